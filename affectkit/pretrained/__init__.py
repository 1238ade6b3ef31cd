"""Models that ship inside affectkit, ready on install: ``affectkit models``, ``Predictor.load()``.

Each model is one ``<name>.safetensors`` file in this folder — fp16 weights, and under the metadata key
``affectkit`` the same inference block a training checkpoint carries (backbone, preprocessing contract, trained
heads, training config) — beside its model card ``<name>.md``. ``index.json`` lists them with their SHA-256,
checked when a file is loaded. ``scripts/ship_model.py`` writes all three from a training run; each card gives the
command that reproduces its model.

A shipped model's name works wherever a model file does (``affectkit predict/serve/export/evaluate``,
``Predictor.load``); an existing file or run folder of that name wins over it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT = "ferplus"
SUFFIX = ".safetensors"
META_KEY = "affectkit"  # the checkpoint's metadata key (affectkit.training.checkpoint.META_KEY)


@dataclass(frozen=True)
class ShippedModel:
    """One entry of ``index.json``."""

    name: str
    version: int
    file: str
    sha256: str
    summary: str  # one line: what it is and what it predicts
    metrics: dict[str, Any] = field(default_factory=dict)  # headline figures of its card

    @property
    def path(self) -> Path:
        return HERE / self.file

    @property
    def card_path(self) -> Path:
        return HERE / f"{self.name}.md"


def _index(folder: Path = HERE) -> dict[str, ShippedModel]:
    path = folder / "index.json"
    if not path.is_file():
        return {}
    return {name: ShippedModel(**{**entry, "name": name}) for name, entry in json.loads(path.read_text()).items()}


def list_models() -> list[ShippedModel]:
    """The shipped models, default first."""
    models = _index()
    return sorted(models.values(), key=lambda m: (m.name != DEFAULT, m.name))


def get(name: str) -> ShippedModel:
    """The shipped model called ``name``; ValueError listing the names otherwise."""
    models = _index()
    if name not in models:
        have = ", ".join(sorted(models)) or "none"
        raise ValueError(f"no shipped model named {name!r} (shipped: {have}; see affectkit models)")
    return models[name]


def is_shipped_name(ref: str | Path | None) -> bool:
    """Whether ``ref`` names a shipped model rather than a file or a run folder (which win when they exist; any
    other folder of that name, e.g. the ``./ferplus/eval`` that ``evaluate ferplus`` writes, does not)."""
    if ref is None or str(ref) not in _index():
        return False
    p = Path(ref)
    return not (p.is_file() or (p / "checkpoints").is_dir())


def weights_path(name: str = DEFAULT) -> Path:
    """The weights file of a shipped model (its hash is checked when it is read: ``read_safetensors``)."""
    m = get(name)
    if not m.path.is_file():
        raise FileNotFoundError(f"{m.path}: the shipped model {name!r} is missing from this installation (reinstall)")
    return m.path


def find(path: str | Path) -> ShippedModel | None:
    """The shipped model whose weights file ``path`` is, else None."""
    p = Path(path).resolve()
    return next((m for m in _index().values() if m.path.resolve() == p), None)


def onnx_file(path: str | Path) -> Path:
    """An ONNX export of a ``.safetensors`` model file, made once into the cache (``AFFECTKIT_CACHE``) and named
    by the file's hash and the export's version, so a changed file or exporter is exported anew."""
    import os
    import tempfile

    from affectkit.data.cache import default_cache_dir
    from affectkit.inference.export import EXPORT_VERSION, export_onnx

    path = Path(path)
    out = default_cache_dir() / "onnx" / f"{path.stem}-{sha256(path)[:16]}-v{EXPORT_VERSION}.onnx"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            made = export_onnx(path, Path(tmp) / out.name)
            os.replace(made, out)  # atomic: concurrent loads see the whole file or none
            sidecar = made.with_suffix(".json")
            if sidecar.is_file():
                os.replace(sidecar, out.with_suffix(".json"))
    return out


def card_text(name: str = DEFAULT) -> str:
    """The model card (Markdown)."""
    return get(name).card_path.read_text(encoding="utf-8")


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, expected: str) -> None:
    got = sha256(path)
    if got != expected:
        raise ValueError(
            f"{path}: SHA-256 {got[:12]}... is not the shipped {expected[:12]}...: the file is damaged (reinstall)"
        )


def read_safetensors(path: str | Path) -> dict[str, Any]:
    """A weights file as the checkpoint dict the rest of affectkit reads: ``{"state_dict": {"model.<key>": fp32
    tensor}, "affectkit": meta}``. A file listed in ``index.json`` is checked against its hash first."""
    from safetensors import safe_open

    path = Path(path)
    for m in _index(path.parent).values():
        if (path.parent / m.file).resolve() == path.resolve():
            verify(path, m.sha256)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            state = {f"model.{k}": _as_fp32(f.get_tensor(k)) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
    if META_KEY not in raw:
        raise ValueError(f"{path}: no '{META_KEY}' metadata: not a model file written by affectkit")
    return {"state_dict": state, META_KEY: json.loads(raw[META_KEY])}


def _as_fp32(t):
    return t.float() if t.is_floating_point() else t


def write_safetensors(ckpt: dict[str, Any], path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """The model of a checkpoint dict as fp16 safetensors with its inference metadata (and ``extra`` keys)."""
    import torch
    from safetensors.torch import save_file

    prefix = "model."
    state = {
        k[len(prefix) :]: (v.half() if v.is_floating_point() else v).contiguous()
        for k, v in ckpt["state_dict"].items()
        if k.startswith(prefix) and isinstance(v, torch.Tensor)
    }
    meta = {**ckpt[META_KEY], **(extra or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={META_KEY: json.dumps(meta, default=str)})
    return path
