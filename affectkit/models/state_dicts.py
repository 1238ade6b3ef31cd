"""Reading weight files and loading them into backbones.

State dicts are read with ``torch.load(weights_only=True)`` (or ``safetensors``); key layouts of the
lukemelas/ml-illustrated EfficientNet port are renamed onto timm's ``tf_efficientnet_*`` keys.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

__all__ = [
    "WeightsNotFoundError",
    "read_state_dict",
    "is_lukemelas_layout",
    "convert_lukemelas_efficientnet",
    "load_backbone_state",
]


class WeightsNotFoundError(FileNotFoundError):
    """Requested weights are not available locally (and could not be downloaded)."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors``.

    Checkpoints wrapping the weights under ``state_dict``/``model``/``model_state_dict`` are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"weights file {path} does not exist (weights must be 'imagenet', 'none' or a path to a state dict)"
        )
    try:
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError as err:
                raise ValueError(f"{path}: reading .safetensors needs the safetensors package") from err
            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (ValueError, WeightsNotFoundError):
        raise
    except Exception as err:
        raise ValueError(f"{path}: cannot read as a weights_only torch state dict or safetensors file: {err}") from err
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path}: expected a non-empty state dict (mapping name -> tensor), got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path}: the state dict holds no tensors")
    return tensors


# lukemelas EfficientNet-PyTorch per-block names -> timm names. Blocks without expansion (expand ratio 1) are
# timm DepthwiseSeparableConv (conv_dw, bn1, conv_pw, bn2); others are InvertedResidual.
_LM_DS = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
}
_LM_IR = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
}
_LM_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def is_lukemelas_layout(state: Mapping[str, Any]) -> bool:
    return "_conv_stem.weight" in state


def convert_lukemelas_efficientnet(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch (lukemelas / ml-illustrated lite) state dict onto a timm EfficientNet.

    ``model`` is the timm model (its ``blocks`` give the stage layout: flat block j -> ``blocks.s.i``).
    Every source key must map and every shape must match the model, else ``ValueError``.
    """
    blocks = cast(nn.Sequential, model.blocks)
    layout = [(s, i) for s, stage in enumerate(blocks) for i in range(len(cast(nn.Sequential, stage)))]
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    block_re = re.compile(r"^_blocks\.(\d+)\.(_[a-z0-9_]+)\.(.+)$")
    for key, value in state.items():
        m = block_re.match(key)
        new = None
        if m:
            j, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            table = _LM_IR if f"_blocks.{j}._expand_conv.weight" in state else _LM_DS
            if j < len(layout) and layer in table:
                s, i = layout[j]
                new = f"blocks.{s}.{i}.{table[layer]}.{rest}"
        else:
            layer, _, rest = key.partition(".")
            if layer in _LM_TOP:
                new = f"{_LM_TOP[layer]}.{rest}"
        if new is None:
            unmapped.append(key)
            continue
        out[new] = value
    if unmapped:
        raise ValueError(f"EfficientNet key conversion: no timm name for {unmapped[:10]}")
    if len(layout) != len({k.split(".")[1] for k in state if k.startswith("_blocks.")}):
        raise ValueError(
            f"EfficientNet key conversion: the file has a different number of blocks than the model ({len(layout)})"
        )
    bad = [
        (k, tuple(v.shape), tuple(target[k].shape))
        for k, v in out.items()
        if k in target and v.shape != target[k].shape
    ]
    if bad:
        raise ValueError(f"EfficientNet key conversion: shape mismatches {bad[:5]}")
    return out


def _best_prefix(keys: list[str], target: set[str]) -> str:
    """The key prefix (e.g. ``module.``, ``model.backbone.``) whose removal matches most target keys."""
    best, best_n = "", sum(k in target for k in keys)
    prefixes = set()
    for k in keys:
        parts = k.split(".")
        for n in range(1, min(len(parts), 4)):
            prefixes.add(".".join(parts[:n]) + ".")
    for p in prefixes:
        n = sum(k[len(p) :] in target for k in keys if k.startswith(p))
        if n > best_n:
            best, best_n = p, n
    return best


def load_backbone_state(
    backbone: nn.Module,
    state: Mapping[str, torch.Tensor],
    classifier_prefixes: tuple[str, ...] = (),
    source: str = "state dict",
) -> None:
    """Load ``state`` (full ImageNet model or backbone-only, maybe under a prefix) into ``backbone``.

    Keys of the ImageNet classifier (``classifier_prefixes``) are dropped silently; other keys the backbone
    lacks are reported in a warning; any backbone key the file lacks (``num_batches_tracked`` aside) is an
    error, as is a shape mismatch. ``source`` names the file in messages.
    """
    target = backbone.state_dict()
    prefix = _best_prefix(list(state), set(target))
    outside = [k for k in state if not k.startswith(prefix)]  # e.g. head.* of a training checkpoint
    state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    matched = [k for k in state if k in target]
    if not matched:
        raise ValueError(
            f"{source}: no key matches the backbone (file keys like {list(state)[:3]}, "
            f"backbone keys like {list(target)[:3]})"
        )
    extra = [k for k in state if k not in target and not k.startswith(classifier_prefixes)] + outside
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{source}: {len(missing)} backbone weights missing from the file, e.g. {missing[:10]}")
    bad = [(k, tuple(state[k].shape), tuple(target[k].shape)) for k in matched if state[k].shape != target[k].shape]
    if bad:
        raise ValueError(f"{source}: shape mismatch (key, file, model): {bad[:5]}")
    if extra:
        warnings.warn(
            f"{source}: ignored {len(extra)} keys the backbone does not have, e.g. {extra[:10]}", stacklevel=3
        )
    backbone.load_state_dict({k: state[k] for k in matched}, strict=False)
