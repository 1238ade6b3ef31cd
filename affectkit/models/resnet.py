"""ResNet-18/50 from torchvision."""

from __future__ import annotations

from torch import nn

from affectkit.models._registry import BackboneSpec, register_model
from affectkit.models._stages import matcher_stages
from affectkit.models.tv_common import tv_preprocess

# Same grouping as timm's ResNet.group_matcher(coarse=True): stem, then layer1..layer4.
_STAGES = {"stem": r"^conv1|^bn1", "blocks": r"^layer(\d+)\."}


def _resnet_to_backbone(full: nn.Module) -> nn.Module:
    full.fc = nn.Identity()  # torchvision ResNet.forward already pools and flattens before fc
    return full


def _resnet_spec(name: str) -> BackboneSpec:
    from torchvision import models

    builder = getattr(models, name)
    enum = {"resnet18": models.ResNet18_Weights, "resnet50": models.ResNet50_Weights}[name]
    return BackboneSpec(
        name=name,
        # Zero-initialised last BN of each residual block: every block starts as identity, which makes
        # training from random init markedly faster (Goyal et al. 2017); pretrained weights overwrite it.
        build_full=lambda: builder(weights=None, zero_init_residual=True),
        to_backbone=_resnet_to_backbone,
        stages=matcher_stages(_STAGES),
        preprocess=tv_preprocess(),
        classifier_prefixes=("fc.",),
        num_features={"resnet18": 512, "resnet50": 2048}[name],
        tv_weights=tuple(reversed(list(enum))),  # newest (V2) first where it exists
    )


@register_model("resnet18")
def _resnet18() -> BackboneSpec:
    return _resnet_spec("resnet18")


@register_model("resnet50")
def _resnet50() -> BackboneSpec:
    return _resnet_spec("resnet50")
