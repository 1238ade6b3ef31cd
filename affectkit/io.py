"""Files of a run: atomic writing (checkpoints, metrics, split, config) and finding a run's model file.

The data go to a temporary file in the target's own folder, are flushed to disk, and the file is renamed over
the target with ``os.replace``: a crash at any moment leaves the old file or the new one, never a truncated one
(the rename is atomic on one filesystem; a temporary file elsewhere, e.g. in /tmp, would make it a copy).
Temporary files are named ``.<name>.<random>.tmp`` so a run folder's leftovers are easy to find.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_torch_save", "atomic_write_with", "resolve_checkpoint"]


def atomic_write_with(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(binary file)`` on a temporary file next to ``path``, fsync, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result gets a normal file's permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return atomic_write_with(path, lambda f: f.write(raw))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write_with(path, lambda f: torch.save(obj, f))


def resolve_checkpoint(run_or_ckpt: str | Path, which: str = "best") -> Path:
    """The model file a user named: a run folder resolves to its ``checkpoints/best.ckpt`` (or ``last.ckpt``); a
    shipped model's name (``affectkit models``) to its weights file; a file is returned as is. Every command that
    takes a run or a model file goes through here."""
    from affectkit import pretrained

    p = Path(run_or_ckpt)
    if pretrained.is_shipped_name(run_or_ckpt):
        return pretrained.weights_path(str(run_or_ckpt))
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(
            f"checkpoint not found: {p} (no such file or run folder, nor a shipped model: see affectkit models)"
        )
    for name in (f"{which}.ckpt", "last.ckpt"):
        cand = p / "checkpoints" / name
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{p}: no checkpoint found (looked for checkpoints/{which}.ckpt and checkpoints/last.ckpt)")


MODEL_SUFFIXES = (".ckpt", ".onnx", ".safetensors")


def looks_like_model(ref: str | Path) -> bool:
    """Whether a command-line argument names a model: a model file, a run folder (it has ``checkpoints/``) or a
    shipped model's name."""
    from affectkit import pretrained

    p = Path(ref)
    if p.suffix.lower() in MODEL_SUFFIXES:
        return True
    if p.is_dir():
        return (p / "checkpoints").is_dir()
    return pretrained.is_shipped_name(ref)


def split_model_argument(model: str | None, args: list[str]) -> tuple[str | None, list[str]]:
    """``affectkit predict [MODEL] INPUT...``: (the model, or None for the shipped default; the inputs). The first
    argument is the model when it names one (see ``looks_like_model``) and ``--model`` was not given."""
    if model is not None or not args or not looks_like_model(args[0]):
        return model, list(args)
    if len(args) == 1:
        raise ValueError(f"{args[0]} is a model: give the images or videos to predict after it")
    return args[0], list(args[1:])
