"""Distillation targets: a trained model's expression probabilities mixed into the training labels.

With ``teacher: NAME_OR_PATH`` in a training config, every training face with an expression label gets the
target ``(1 - teacher_weight) * own + teacher_weight * teacher``, where ``own`` is its vote distribution (FER+
``label_mode: distribution``) or its one-hot label, and ``teacher`` the teacher's probabilities for that face
(offline knowledge distillation, Hinton et al. 2015, at temperature 1; a student of the teacher's own size
trained this way is a "born-again" network, Furlanello et al. 2018). ``teacher: [A, B, ...]`` is an ensemble:
its members' probabilities are averaged, so one student learns what several models agree on. Each teacher sees
each face once, through its own preprocessing contract, before training starts; the probabilities are kept in
the run folder (``teacher.npz``), so a resumed run does not recompute them. Validation and test labels are
never changed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affectkit.data.records import Sample
from affectkit.io import atomic_write_with, resolve_checkpoint
from affectkit.labels import NUM_EXPRESSIONS

__all__ = ["TEACHER_FILE", "mix_teacher", "teacher_probabilities", "teachers"]

TEACHER_FILE = "teacher.npz"


def teacher_probabilities(
    samples: Sequence[Sample], teacher: str, batch_size: int = 64, decoded_store: bool = True
) -> np.ndarray:
    """The teacher's expression probabilities (N, 8) for ``samples``; NaN rows for images it could not read.

    ``teacher``: a shipped model's name (``affectkit models``), an exported ``.onnx``, a run folder or a
    ``.ckpt``. Shipped models and ``.onnx`` files run on ONNX Runtime (several times faster on a CPU than eager
    PyTorch for these networks); checkpoints on PyTorch in fp32. The faces are decoded by the teacher's contract
    into a decoded-image store (``affectkit.data.cache``: parallel, bad files marked), kept in the cache when
    ``decoded_store`` (a run that trains at the teacher's contract shares it), else in a temporary folder.
    """
    import tempfile

    from affectkit.data.cache import build_store
    from affectkit.inference.predictor import Predictor

    onnx = resolve_checkpoint(teacher).suffix.lower() in (".onnx", ".safetensors")
    predictor = Predictor.load(teacher, backend="onnx" if onnx else "torch", batch_size=batch_size)
    if not predictor.heads["expression"]:
        raise ValueError(f"teacher {teacher}: it was trained without expression labels; name an expression model")
    out = np.full((len(samples), NUM_EXPRESSIONS), np.nan)
    with tempfile.TemporaryDirectory(prefix="affectkit-teacher-") as tmp:
        store = build_store(list(samples), predictor.contract, cache_dir=None if decoded_store else tmp, warn=False)
        rows = np.flatnonzero(store.ok)
        for start in range(0, len(rows), 512):  # bounded memory: 512 faces at a time from the memory map
            part = rows[start : start + 512]
            out[part], _ = predictor.predict_crops(np.asarray(store.images[part]))
        del store  # the memory map, before a temporary folder goes
    return out


def teachers(teacher: str | Sequence[str] | None) -> list[str]:
    """The config's ``teacher`` as a list: none, one model, or an ensemble's members."""
    if not teacher:
        return []
    return [teacher] if isinstance(teacher, str) else list(teacher)


def mix_teacher(
    samples: Sequence[Sample],
    keys: Sequence[str],
    teacher: str | Sequence[str],
    weight: float,
    cache: Path | None = None,
    decoded_store: bool = True,
) -> int:
    """Mix ``teacher``'s probabilities (a list: its members' mean) into the targets of the samples whose key is
    in ``keys`` (in place).

    Returns how many samples got a mixed target. ``cache``: where the probabilities are kept (and read back
    when they were computed for the same teacher files and the same keys). ``decoded_store``: see
    :func:`teacher_probabilities`.
    """
    wanted = set(keys)
    chosen = [s for s in samples if s.key in wanted and s.expression is not None]
    if not chosen:
        return 0
    members = teachers(teacher)
    ident = "+".join(_identity(t) for t in members)  # one teacher: its file's hash, as before ensembles
    probs = _cached(cache, ident, [s.key for s in chosen])
    if probs is None:
        # a face one member cannot read is NaN in the mean too: it keeps its own label
        probs = np.mean([teacher_probabilities(chosen, t, decoded_store=decoded_store) for t in members], axis=0)
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
    """A teacher file's SHA-256: cached probabilities are reused only for the very same weights."""
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
    atomic_write_with(cache, lambda f: np.savez(f, teacher_sha256=np.array(ident), keys=np.array(keys), probs=probs))
