"""VGG16 (with and without BatchNorm) from torchvision, without its fully connected layers."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from affectkit.models._registry import BackboneSpec, register_model
from affectkit.models._stages import index_matcher, matcher_stages
from affectkit.models.tv_common import tv_preprocess

__all__ = ["VGGFeatures"]

# ``features`` indices where each of the five conv blocks starts (each ends with its max-pool).
_STAGE_BOUNDS = {False: (0, 5, 10, 17, 24, 31), True: (0, 7, 14, 24, 34, 44)}


class VGGFeatures(nn.Module):
    """VGG conv stack + global average pooling -> (B, 512).

    The 3 fully connected layers (~120M of VGG16's 138M parameters) are dropped, like Keras
    ``include_top=False`` + global pooling in the FER studies we compare against: they are tied to 224 px
    inputs and ImageNet classes, and dominate memory without helping transfer. ``features`` keeps
    torchvision's attribute name so ImageNet checkpoints load after dropping ``classifier.*``.
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


def _vgg_spec(name: str, batch_norm: bool) -> BackboneSpec:
    from torchvision import models
    from torchvision.models.vgg import cfgs, make_layers

    builder = models.vgg16_bn if batch_norm else models.vgg16
    enum = models.VGG16_BN_Weights if batch_norm else models.VGG16_Weights
    return BackboneSpec(
        name=name,
        build_full=lambda: builder(weights=None),
        to_backbone=lambda full: VGGFeatures(cast(nn.Sequential, full.features)),
        # Built directly so the 120M-parameter classifier is never allocated.
        build_backbone_fn=lambda: VGGFeatures(make_layers(cfgs["D"], batch_norm=batch_norm)),
        stages=matcher_stages(index_matcher("features", _STAGE_BOUNDS[batch_norm])),
        num_features=512,
        preprocess=tv_preprocess(),
        classifier_prefixes=("classifier.",),
        # IMAGENET1K_FEATURES (vgg16 only) expects other normalisation; keep to the classification weights.
        tv_weights=(enum.IMAGENET1K_V1,),
    )


@register_model("vgg16")
def _vgg16() -> BackboneSpec:
    return _vgg_spec("vgg16", batch_norm=False)


@register_model("vgg16_bn")
def _vgg16_bn() -> BackboneSpec:
    return _vgg_spec("vgg16_bn", batch_norm=True)
