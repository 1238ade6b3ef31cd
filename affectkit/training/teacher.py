"""Distillation targets: a trained model's expression probabilities mixed into the training labels.

With ``teacher: NAME_OR_PATH`` in a training config, every training face with an expression label gets the
target ``(1 - teacher_weight) * own + teacher_weight * teacher``, where ``own`` is its vote distribution (FER+
``label_mode: distribution``) or its one-hot label, and ``teacher`` the teacher's probabilities for that face
(offline knowledge distillation, Hinton et al. 2015, at temperature 1; a student of the teacher's own size
trained this way is a "born-again" network, Furlanello et al. 2018). The teacher sees each face once, through
its own preprocessing contract, before training starts; the probabilities are kept in the run folder
(``teacher.npz``), so a resumed run does not recompute them. Validation and test labels are never changed.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affectkit.data.records import Sample
from affectkit.io import atomic_write_with, resolve_checkpoint
from affectkit.labels import NUM_EXPRESSIONS

__all__ = ["TEACHER_FILE", "mix_teacher", "teacher_probabilities"]

TEACHER_FILE = "teacher.npz"


def teacher_probabilities(samples: Sequence[Sample], teacher: str, batch_size: int = 64) -> np.ndarray:
    """The teacher's expression probabilities (N, 8) for ``samples``; NaN rows for images it could not read.

    ``teacher``: a shipped model's name (``affectkit models``), an exported ``.onnx``, a run folder or a
    ``.ckpt``. Shipped models and ``.onnx`` files run on ONNX Runtime (several times faster on a CPU than eager
    PyTorch for these networks); checkpoints on PyTorch in fp32.
    """
    from affectkit.inference.predictor import Predictor

    onnx = resolve_checkpoint(teacher).suffix.lower() in (".onnx", ".safetensors")
    predictor = Predictor.load(teacher, backend="onnx" if onnx else "torch", batch_size=batch_size)
    if not predictor.heads["expression"]:
        raise ValueError(f"teacher {teacher}: it was trained without expression labels; name an expression model")
    contract = predictor.contract
    out = np.full((len(samples), NUM_EXPRESSIONS), np.nan)
    for start in range(0, len(samples), 512):  # bounded memory: 512 crops at a time
        chunk, rows = [], []
        for i in range(start, min(start + 512, len(samples))):
            s = samples[i]
            try:
                chunk.append(contract.to_array(s.image, box=s.box))
                rows.append(i)
            except Exception:  # an unreadable image keeps its own label; the data module skips it anyway
                continue
        if chunk:
            out[rows], _ = predictor.predict_crops(np.stack(chunk))
    return out


def mix_teacher(
    samples: Sequence[Sample], keys: Sequence[str], teacher: str, weight: float, cache: Path | None = None
) -> int:
    """Mix ``teacher``'s probabilities into the targets of the samples whose key is in ``keys`` (in place).

    Returns how many samples got a mixed target. ``cache``: where the probabilities are kept (and read back
    when they were computed for the same teacher file and the same keys).
    """
    wanted = set(keys)
    chosen = [s for s in samples if s.key in wanted and s.expression is not None]
    if not chosen:
        return 0
    ident = _identity(teacher)
    probs = _cached(cache, ident, [s.key for s in chosen])
    if probs is None:
        probs = teacher_probabilities(chosen, teacher)
        if cache is not None:
            _save(cache, ident, [s.key for s in chosen], probs)
    mixed = 0
    for s, p in zip(chosen, probs, strict=True):
        if np.isnan(p).any():
            continue
        own = np.eye(NUM_EXPRESSIONS)[s.expression] if s.soft_label is None else np.asarray(s.soft_label, float)
        s.soft_label = ((1.0 - weight) * own + weight * p).astype(np.float32)
        mixed += 1
    if mixed < len(chosen):
        bad = len(chosen) - mixed
        warnings.warn(f"teacher: {bad} training image(s) unreadable, their own labels kept", stacklevel=2)
    return mixed


def _identity(teacher: str) -> str:
    """The teacher file's SHA-256: cached probabilities are reused only for the very same weights."""
    from affectkit.pretrained import sha256

    return sha256(resolve_checkpoint(teacher))


def _cached(cache: Path | None, ident: str, keys: list[str]) -> np.ndarray | None:
    if cache is None or not cache.is_file():
        return None
    with np.load(cache, allow_pickle=False) as z:
        if str(z["teacher_sha256"]) != ident or z["keys"].tolist() != keys:
            return None
        return z["probs"]


def _save(cache: Path, ident: str, keys: list[str], probs: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, teacher_sha256=np.array(ident), keys=np.array(keys), probs=probs)
    atomic_write_with(cache, lambda f: f.write(buf.getvalue()))
