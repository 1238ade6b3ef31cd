"""Backbones with a multi-task affect head: factory, registry and offline ImageNet weights.

>>> from affectkit.models import create_model
>>> model = create_model("resnet50", weights="none")  # doctest: +SKIP
>>> logits, va = model(images)  # (B, 8), (B, 2) in [-1, 1]  # doctest: +SKIP
"""

from __future__ import annotations

from affectkit.models.affect import AffectModel
from affectkit.models.head import MultiTaskHead
from affectkit.models.registry import BackboneSpec, create_model, get_spec, list_models, load_imagenet, register_model
from affectkit.models.weights import WeightsNotFoundError, resolve_imagenet

__all__ = [
    "AffectModel",
    "BackboneSpec",
    "MultiTaskHead",
    "WeightsNotFoundError",
    "create_model",
    "get_spec",
    "list_models",
    "load_imagenet",
    "register_model",
    "resolve_imagenet",
]
