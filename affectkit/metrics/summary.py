"""Multi-task (expression + valence + arousal) summary of one evaluation, and checkpoint selection."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from affectkit.labels import EXPRESSIONS
from affectkit.metrics._common import CLASSIFICATION_SCALARS, REGRESSION_SCALARS, _warn
from affectkit.metrics.classification import _classification
from affectkit.metrics.regression import regression_metrics

__all__ = ["multitask_metrics", "selection_score"]


def multitask_metrics(
    y_true: Any,
    y_prob: Any,
    valence_true: Any,
    valence_pred: Any,
    arousal_true: Any,
    arousal_pred: Any,
    *,
    labels: Sequence[int] = range(8),
    names: Sequence[str] = EXPRESSIONS,
    ci: bool = False,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Expression, valence and arousal metrics of one evaluation, as one JSON-serialisable dict.

    Top level: the :func:`classification_metrics` keys, plus ``valence`` and ``arousal`` dicts with the
    :func:`regression_metrics` keys, plus ``n`` (rows), ``n_expression``, ``n_valence``, ``n_arousal`` (rows
    labelled for each task). All arrays are row-aligned. A row whose label is missing (expression < 0 or NaN,
    valence/arousal NaN) is left out of that task only. A task whose true and predicted arrays are both ``None``
    (a model or dataset without it) gets NaN metrics without warnings. With ``ci=True`` each task is
    bootstrapped separately over its own labelled rows, adding ``<key>_ci`` entries.
    """
    pairs = {
        "expression": (y_true, y_prob),
        "valence": (valence_true, valence_pred),
        "arousal": (arousal_true, arousal_pred),
    }
    n = _row_count(pairs)
    boot: dict[str, Any] = {"ci": ci, "n_boot": n_boot, "alpha": alpha, "seed": seed}
    out, n_expression = _expression(y_true, y_prob, labels, names, boot)

    counts = {}
    for dim, (truth, pred) in (("valence", pairs["valence"]), ("arousal", pairs["arousal"])):
        if truth is None:
            res: dict[str, Any] = {k: float("nan") for k in REGRESSION_SCALARS}
            if ci:
                res.update({f"{k}_ci": [float("nan"), float("nan")] for k in REGRESSION_SCALARS})
            counts[dim] = 0
        else:
            res = regression_metrics(truth, pred, **boot)
            counts[dim] = int(np.count_nonzero(~np.isnan(np.asarray(truth, dtype=np.float64))))
        out[dim] = res
    out.update(n=int(n), n_expression=int(n_expression), n_valence=counts["valence"], n_arousal=counts["arousal"])
    return out


def _row_count(pairs: dict[str, tuple[Any, Any]]) -> int:
    """The row count shared by every (truth, prediction) pair given; each task gives both arrays or neither."""
    lengths = {}
    for task, (truth, pred) in pairs.items():
        if (truth is None) != (pred is None):
            raise ValueError(f"{task}: give both the true and the predicted array, or neither")
        if truth is not None:
            lengths[f"{task} truth"] = len(truth)
            lengths[f"{task} prediction"] = len(pred)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _expression(
    y_true: Any, y_prob: Any, labels: Sequence[int], names: Sequence[str], boot: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """(the classification metrics, the labelled rows); without labels NaN metrics and no warnings."""
    if y_true is not None:
        out = _classification(y_true, y_prob, labels, names, warn=True, **boot)
        return out, sum(row["support"] for row in out["per_class"].values())
    out = _classification(
        np.zeros(0, dtype=np.int64),
        np.zeros((0, len(list(labels)))),
        labels,
        names,
        ci=False,
        n_boot=boot["n_boot"],
        alpha=boot["alpha"],
        seed=boot["seed"],
        warn=False,
    )
    if boot["ci"]:
        out.update({f"{k}_ci": [float("nan"), float("nan")] for k in CLASSIFICATION_SCALARS})
    return out, 0


def selection_score(metrics: dict[str, Any]) -> float:
    """Default checkpoint-selection score (higher is better) from a :func:`multitask_metrics` dict.

    ``0.5 * f1_macro + 0.5 * mean(valence ccc, arousal ccc)``. Terms that are missing or NaN are dropped:
    ``f1_macro`` alone for a model without valence/arousal, the mean CCC alone (of whichever of valence and
    arousal are available) for a model without expressions. NaN + warning when no term is available.
    Also accepts a plain :func:`classification_metrics` dict.
    """

    def finite(x: Any) -> float | None:
        return float(x) if isinstance(x, (int, float, np.floating)) and math.isfinite(x) else None

    f1 = finite(metrics.get("f1_macro"))
    cccs = [c for c in (finite((metrics.get(d) or {}).get("ccc")) for d in ("valence", "arousal")) if c is not None]
    if f1 is not None and cccs:
        return 0.5 * f1 + 0.5 * float(np.mean(cccs))
    if f1 is not None:
        return f1
    if cccs:
        return float(np.mean(cccs))
    _warn("selection score undefined: no f1_macro and no valence/arousal ccc available; set to NaN")
    return float("nan")
