"""Any timm architecture as a backbone (``"timm:<name>"``)."""

from __future__ import annotations

from typing import Any, cast

from torch import nn

from affectkit.models._registry import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec
from affectkit.models._stages import timm_stages

__all__ = ["timm_spec", "timm_stages"]


def _timm_preprocess(cfg: Any) -> dict:
    get = cfg.get if isinstance(cfg, dict) else (lambda k, d=None: getattr(cfg, k, d))
    size = get("input_size", (3, 224, 224))
    return {
        "mean": tuple(float(v) for v in get("mean", IMAGENET_MEAN)),
        "std": tuple(float(v) for v in get("std", IMAGENET_STD)),
        "input_size": int(size[-1]),
        "interpolation": get("interpolation", "bicubic") or "bicubic",
    }


def _timm_to_backbone(full: nn.Module) -> nn.Module:
    cast(Any, full).reset_classifier(0)  # a timm model method that nn.Module does not declare
    return full


def timm_spec(arch: str, name: str, packaged: tuple = ()) -> BackboneSpec:
    """Spec of timm architecture ``arch`` registered as ``name``; preprocessing from its pretrained config."""
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(arch):
        raise ValueError(f"unknown timm model {arch!r} (see timm.list_models())")
    try:
        cfg = get_pretrained_cfg(arch)
    except Exception:
        cfg = None
    classifier = getattr(cfg, "classifier", None) or "classifier"
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return BackboneSpec(
        name=name,
        build_full=lambda: timm.create_model(arch, pretrained=False),
        to_backbone=_timm_to_backbone,
        build_backbone_fn=lambda: timm.create_model(arch, pretrained=False, num_classes=0),
        stages=timm_stages,
        preprocess=_timm_preprocess(cfg if cfg is not None else {}),
        classifier_prefixes=tuple(f"{c}." for c in classifier),
        timm_arch=arch,
        packaged=packaged,
    )
