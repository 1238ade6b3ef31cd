"""Detect collapsed predictions: a model that answers (nearly) the same thing for every face.

Collapse is the common failure of affect training (class imbalance pulls everything to Happy/Neutral, a
valence head saturates at the tanh bounds or regresses to the mean). Aggregate metrics can hide it, e.g. a
Happy-only model still reaches a decent accuracy on AffectNet's natural distribution, so evaluation and
training report these checks alongside the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from affectkit.labels import EXPRESSIONS

__all__ = ["detect_collapse"]


def _class_predictions(y_prob_or_pred: Any, k: int) -> np.ndarray:
    arr = np.asarray(y_prob_or_pred)
    if arr.ndim == 2:
        if arr.shape[1] != k:
            raise ValueError(f"expression scores have {arr.shape[1]} columns, expected {k}")
        if arr.shape[0] and not np.isfinite(arr).all():
            raise ValueError("expression scores contain NaN or infinite values")
        return arr.argmax(axis=1) if arr.shape[0] else np.zeros(0, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"expression predictions must be (N, {k}) scores or (N,) class ids, got shape {arr.shape}")
    if arr.size and (arr.dtype.kind not in "iuf" or (arr != np.round(arr)).any() or arr.min() < 0 or arr.max() >= k):
        raise ValueError(f"expression class predictions must be integer ids in 0..{k - 1}")
    return arr.astype(np.int64)


def _va_warnings(name: str, values: Any, bound: float, bound_share: float, min_std: float) -> list[str]:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} predictions must be 1-D, got shape {v.shape}")
    out = []
    bad = ~np.isfinite(v)
    if bad.any():
        out.append(f"{name}: {int(bad.sum())} of {v.size} predictions are NaN or infinite")
    v = v[~bad]
    if v.size == 0:
        return out
    at_bounds = float(np.mean(np.abs(v) > bound))
    if at_bounds > bound_share:
        out.append(
            f"{name} piled at the bounds: {at_bounds:.1%} of predictions have |{name}| > {bound:g} "
            f"(threshold {bound_share:.0%})"
        )
    std = float(v.std())
    if v.size >= 2 and std < min_std:
        out.append(
            f"{name} barely varies: std {std:.3g} < {min_std:g} (mean {v.mean():.3g}); "
            "the head may be predicting a constant"
        )
    return out


def detect_collapse(
    y_prob_or_pred: Any,
    valence_pred: Any = None,
    arousal_pred: Any = None,
    *,
    max_class_share: float = 0.8,
    min_classes: int = 4,
    bound: float = 0.95,
    bound_share: float = 0.5,
    min_std: float = 0.05,
    names: Sequence[str] = EXPRESSIONS,
) -> list[str]:
    """Human-readable warnings about collapsed predictions; an empty list when none is found.

    ``y_prob_or_pred``: (N, K) expression scores (argmax taken) or (N,) predicted class ids, or ``None`` for a
    model without an expression head. ``valence_pred`` / ``arousal_pred``: (N,) predictions in [-1, 1] or
    ``None``. Checks, with their thresholds:

    * one class dominates: the most predicted class takes more than ``max_class_share`` (80%) of predictions;
    * few classes used: fewer than ``min_classes`` (4) of the K classes are ever predicted (only checked when
      there are at least ``min_classes`` predictions, so tiny batches are not flagged);
    * valence/arousal piled at the bounds: more than ``bound_share`` (50%) of predictions have ``|v| > bound``
      (0.95), the sign of a saturated tanh;
    * valence/arousal barely varying: standard deviation below ``min_std`` (0.05; labels span [-1, 1]);
    * NaN or infinite valence/arousal predictions.

    Checks are on predictions only, never labels, so they also run on unlabelled data.
    """
    if not 0 < max_class_share <= 1 or not 0 < bound_share <= 1:
        raise ValueError("max_class_share and bound_share must be in (0, 1]")
    names = list(names)
    warnings_: list[str] = []
    if y_prob_or_pred is not None:
        pred = _class_predictions(y_prob_or_pred, len(names))
        if pred.size:
            counts = np.bincount(pred, minlength=len(names))
            top = int(counts.argmax())
            share = counts[top] / pred.size
            if share > max_class_share:
                warnings_.append(
                    f"expression predictions collapse onto one class: {names[top]} is {share:.1%} of "
                    f"{pred.size} predictions (threshold {max_class_share:.0%})"
                )
            used = int(np.count_nonzero(counts))
            if pred.size >= min_classes and used < min_classes:
                which = ", ".join(names[i] for i in np.flatnonzero(counts))
                warnings_.append(
                    f"only {used} of {len(names)} classes ever predicted ({which}) in {pred.size} predictions"
                )
    for name, values in (("valence", valence_pred), ("arousal", arousal_pred)):
        if values is not None:
            warnings_.extend(_va_warnings(name, values, bound, bound_share, min_std))
    return warnings_
