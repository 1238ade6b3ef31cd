"""Backbone registry and the model factories ``create_model`` / ``load_imagenet`` (timm layout).

Backbones register with the ``@register_model(name)`` decorator (:mod:`._registry`): the decorated function
returns a :class:`BackboneSpec`. One module per family declares its backbones (:mod:`.vgg`, :mod:`.resnet`,
:mod:`.mobilenet`, :mod:`.efficientnet_lite`; ``"timm:<name>"`` via :mod:`.timm_models`); importing this
module registers them all. The factories live in :mod:`.factory`.
"""

from __future__ import annotations

# Family modules register their backbones on import.
from affectkit.models import efficientnet_lite, mobilenet, resnet, vgg  # noqa: F401
from affectkit.models._registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSpec,
    get_spec,
    list_models,
    register_model,
)
from affectkit.models._stages import StageGroup, timm_stages
from affectkit.models.factory import create_model, load_imagenet
from affectkit.models.vgg import VGGFeatures
from affectkit.models.weights import WeightsNotFoundError

__all__ = [
    "BackboneSpec",
    "register_model",
    "list_models",
    "get_spec",
    "create_model",
    "load_imagenet",
    "WeightsNotFoundError",
    "VGGFeatures",
    "timm_stages",
    "StageGroup",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
