"""Backbone registry (timm style): ``@register_model(name)`` functions return a :class:`BackboneSpec`.

``"timm:<name>"`` is resolved on top of the registered names: a spec is built on the fly for any timm
architecture (see :mod:`affectkit.models.timm_models`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["BackboneSpec", "register_model", "list_models", "get_spec", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and where its ImageNet weights come from.

    ``build_full()`` -> the 1000-class ImageNet model; ``build_backbone()`` -> randomly initialised backbone;
    ``to_backbone(full)`` -> backbone sharing the full model's weights; ``stages(backbone)`` -> sub-modules
    input to output; ``tv_weights``: torchvision Weights members, preferred first; ``timm_arch``: timm name
    whose pretrained config (HF hub id, url) is searched; ``packaged``: (module, glob, layout, tv_weights)
    of weights shipped inside installed packages.
    """

    name: str
    build_full: Callable[[], nn.Module]
    to_backbone: Callable[[nn.Module], nn.Module]
    stages: Callable[[nn.Module], list[nn.Module]]
    preprocess: dict
    classifier_prefixes: tuple[str, ...]
    build_backbone_fn: Callable[[], nn.Module] | None = None
    tv_weights: tuple[Any, ...] = ()
    timm_arch: str | None = None
    packaged: tuple[tuple[str, str, str, Any], ...] = field(default_factory=tuple)
    num_features: int | None = None  # None: read from the built backbone

    def build_backbone(self) -> nn.Module:
        if self.build_backbone_fn is not None:
            return self.build_backbone_fn()
        return self.to_backbone(self.build_full())


_REGISTRY: dict[str, Callable[[], BackboneSpec]] = {}


def register_model(name: str) -> Callable[[Callable[[], BackboneSpec]], Callable[[], BackboneSpec]]:
    """Decorator registering a zero-argument function returning a :class:`BackboneSpec` under ``name``."""

    def deco(fn: Callable[[], BackboneSpec]) -> Callable[[], BackboneSpec]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """Registered backbone names (``"timm:<name>"`` is accepted on top of these)."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """The spec of a registered backbone or of ``"timm:<timm model name>"``; ValueError with close matches."""
    if name.startswith("timm:"):
        from affectkit.models.timm_models import timm_spec

        return timm_spec(name[len("timm:") :], name)
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list_models(), n=3)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"unknown backbone {name!r}{hint}; choose one of {list_models()} or 'timm:<timm model name>'")
    return _REGISTRY[name]()
