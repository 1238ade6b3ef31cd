"""Model factories: ``create_model`` (backbone + affect head) and ``load_imagenet`` (the full ImageNet model).

Conventions: a backbone maps normalised images (B, 3, H, W) to pooled features (B, num_features); its
state-dict keys are those of the full ImageNet model minus the classifier, so full ImageNet checkpoints load
into it after dropping ``classifier_prefixes``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# Family modules register their backbones on import.
from affectkit.models import efficientnet_lite, mobilenet, resnet, vgg  # noqa: F401
from affectkit.models._registry import BackboneSpec, get_spec
from affectkit.models.affect import AffectModel
from affectkit.models.weights import (
    convert_lukemelas_efficientnet,
    is_lukemelas_layout,
    load_backbone_state,
    read_state_dict,
    resolve_imagenet,
)

__all__ = ["create_model", "load_imagenet"]


def _num_features(backbone: nn.Module, spec: BackboneSpec) -> int:
    if spec.num_features is not None:
        return spec.num_features
    for attr in ("head_hidden_size", "num_features"):
        n = getattr(backbone, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    # no declared feature width: measure it (cheap at 64 px).
    was = backbone.training
    backbone.eval()
    with torch.no_grad():
        n = backbone(torch.zeros(1, 3, 64, 64)).shape[-1]
    backbone.train(was)
    return int(n)


def _state_for(spec: BackboneSpec, state: dict, model: nn.Module) -> dict:
    if is_lukemelas_layout(state):
        if spec.timm_arch is None or not hasattr(model, "blocks"):
            raise ValueError(f"EfficientNet-PyTorch style weights do not fit backbone {spec.name}")
        return convert_lukemelas_efficientnet(state, model)
    return state


def create_model(
    name: str,
    weights: str | None = "imagenet",
    dropout: float = 0.0,
    num_classes: int = 8,
    hidden: int | None = None,
) -> AffectModel:
    """Build an :class:`AffectModel` on backbone ``name`` (see :func:`list_models`, or ``"timm:<name>"``).

    ``weights``: ``"imagenet"`` (offline search, see :mod:`affectkit.models.weights`; raises
    :class:`WeightsNotFoundError` when absent), ``"none"``/``None`` (random init), or a path to a state dict
    (.pth/.pt/.safetensors) of the full ImageNet model or of the backbone alone (a prefix such as
    ``module.`` or ``backbone.`` is stripped; head weights in it are ignored).
    """
    spec = get_spec(name)
    source = None
    if isinstance(weights, str) and weights.lower() == "imagenet":
        source = resolve_imagenet(spec)  # before building: a missing file fails fast
    backbone = spec.build_backbone()
    if source is not None:
        state = _state_for(spec, read_state_dict(source.path), backbone)
        load_backbone_state(backbone, state, spec.classifier_prefixes, source=str(source.path))
    elif weights is not None and str(weights).lower() != "none":
        state = _state_for(spec, read_state_dict(weights), backbone)
        load_backbone_state(backbone, state, spec.classifier_prefixes, source=str(weights))
    return AffectModel(
        backbone,
        num_features=_num_features(backbone, spec),
        num_classes=num_classes,
        dropout=dropout,
        preprocess=spec.preprocess,
        backbone_name=name,
        hidden=hidden,
        stages_fn=spec.stages,
    )


def load_imagenet(name: str) -> tuple[nn.Module, Callable]:
    """The 1000-class ImageNet model for ``name`` (eval mode) and the PIL-image -> tensor transform it expects.

    Raises :class:`WeightsNotFoundError` when no weights are available offline.
    """
    spec = get_spec(name)
    source = resolve_imagenet(spec)
    full = spec.build_full()
    state = _state_for(spec, read_state_dict(source.path), full)
    try:
        full.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{source.path}: does not match the ImageNet {name} model: {err}") from err
    full.eval()
    if spec.timm_arch is not None:
        from timm.data import create_transform, resolve_data_config

        transform = create_transform(**resolve_data_config({}, model=full))
    else:
        tv = source.tv_weights if source.tv_weights is not None else spec.tv_weights[0]
        transform = tv.transforms()
    return full, transform
