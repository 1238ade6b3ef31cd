"""Expression classification metrics; point estimates from scikit-learn and the ``krippendorff`` package.

Conventions (kept from earlier releases; stated in :func:`classification_metrics`):

* rows with a negative or NaN ``y_true`` have no expression label and are left out;
* ``y_pred = argmax(y_prob)`` (first maximum on ties); a 1-D ``y_prob`` is integer predictions (AUCs NaN);
* F1 macro averages over the classes present in ``y_true`` or ``y_pred`` (sklearn's ``labels=None``);
* ROC AUC and average precision are one-vs-rest per class, averaged over the classes present in ``y_true``;
* undefined values are NaN with an :class:`UndefinedMetricWarning`, never 0 and never an exception.

References: Cohen (1960) "A coefficient of agreement for nominal scales"; Krippendorff (2011) "Computing
Krippendorff's alpha-reliability"; Hand & Till (2001) for one-vs-rest AUC averaging; scikit-learn's
``average_precision_score`` for AP (step-wise, no interpolation).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import krippendorff
import numpy as np
from sklearn import metrics as skm

from affectkit.labels import EXPRESSIONS
from affectkit.metrics._common import CLASSIFICATION_SCALARS, _nan_or_float, _warn
from affectkit.metrics._vectorised import classification_batch
from affectkit.metrics.bootstrap import _bootstrap_batched

__all__ = ["classification_metrics", "krippendorff_alpha_nominal", "classification_scalars"]


def _to_label_index(values: np.ndarray, labels: np.ndarray, what: str) -> np.ndarray:
    """Map label values to their position in ``labels``; ValueError naming the unknown ones."""
    sorter = np.argsort(labels, kind="stable")
    pos = np.searchsorted(labels, values, sorter=sorter)
    pos = np.clip(pos, 0, labels.size - 1)
    idx = sorter[pos]
    bad = labels[idx] != values
    if bad.any():
        unknown = sorted({v.item() for v in np.unique(values[bad])})[:10]
        raise ValueError(f"{what} has values not in labels {labels.tolist()}: {unknown}")
    return idx


def _prepare_classification(
    y_true: Any, y_prob: Any, labels: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate; return (true index, predicted index, scores or None) for labelled rows."""
    lab = np.asarray(list(labels))
    if lab.ndim != 1 or lab.size < 2 or np.unique(lab).size != lab.size:
        raise ValueError(f"labels must be at least 2 distinct values, got {lab.tolist()}")
    t = np.asarray(y_true)
    s = np.asarray(y_prob)
    if t.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {t.shape}")
    if s.ndim not in (1, 2) or s.shape[0] != t.shape[0]:
        raise ValueError(
            f"y_prob must be (N, {lab.size}) scores or (N,) predictions for N={t.shape[0]} labels, got shape {s.shape}"
        )
    if s.ndim == 2 and s.shape[1] != lab.size:
        raise ValueError(f"y_prob has {s.shape[1]} columns but there are {lab.size} labels")
    if t.dtype.kind == "f":
        missing = np.isnan(t) | (t < 0)
        if (t[~missing] != np.round(t[~missing])).any():
            raise ValueError("y_true has non-integer class labels")
    elif t.dtype.kind in "iu":
        missing = t < 0
    elif t.size == 0:
        missing = np.zeros(0, dtype=bool)
    else:
        raise ValueError(f"y_true must hold integer class ids, got dtype {t.dtype}")
    keep = ~missing
    t_idx = _to_label_index(t[keep].astype(np.int64), lab, "y_true")
    if s.ndim == 2:
        s = s[keep].astype(np.float64)
        if not np.isfinite(s).all():
            raise ValueError("y_prob contains NaN or infinite scores")
        p_idx = s.argmax(axis=1) if s.size else np.zeros(0, dtype=np.int64)
        return t_idx, p_idx, s
    p = s[keep]
    if p.dtype.kind == "f":
        if not np.isfinite(p).all() or (p != np.round(p)).any():
            raise ValueError("1-D y_prob (class predictions) must hold integer class ids")
    elif p.dtype.kind not in "iu" and p.size:
        raise ValueError(f"1-D y_prob (class predictions) must hold integer class ids, got dtype {p.dtype}")
    return t_idx, _to_label_index(p.astype(np.int64), lab, "y_pred"), None


def _ovr_macro(t_idx: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Macro one-vs-rest ROC AUC and average precision over the classes present in ``t_idx``; NaN with fewer
    than 2 present (a class without positives, or without negatives, has no defined AUC)."""
    present = np.unique(t_idx)
    if present.size < 2:
        return float("nan"), float("nan")
    roc = [skm.roc_auc_score(t_idx == c, scores[:, c]) for c in present]
    ap = [skm.average_precision_score(t_idx == c, scores[:, c]) for c in present]
    return float(np.mean(roc)), float(np.mean(ap))


def classification_scalars(t_idx: np.ndarray, p_idx: np.ndarray, scores: np.ndarray | None) -> dict[str, float]:
    """The scalar metrics of labelled rows given as class indices (truth, prediction, (N, K) scores or None),
    from scikit-learn and ``krippendorff``; NaN where undefined (no warning here)."""
    nan = float("nan")
    out = dict.fromkeys(CLASSIFICATION_SCALARS, nan)
    if t_idx.size == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined cases are reported once, by the caller, as ours
        out["accuracy"] = skm.accuracy_score(t_idx, p_idx)
        out["f1_macro"] = skm.f1_score(t_idx, p_idx, average="macro", zero_division=0.0)
        out["f1_weighted"] = skm.f1_score(t_idx, p_idx, average="weighted", zero_division=0.0)
        if np.unique(np.r_[t_idx, p_idx]).size >= 2:  # else expected agreement is 1: kappa and alpha are 0/0
            out["kappa"] = skm.cohen_kappa_score(t_idx, p_idx)
            out["krippendorff_alpha"] = krippendorff.alpha(
                reliability_data=np.stack([t_idx, p_idx]).astype(float), level_of_measurement="nominal"
            )
        if scores is not None:
            out["auc_roc"], out["auc_pr"] = _ovr_macro(t_idx, scores)
    return {k: _nan_or_float(v) for k, v in out.items()}


def _per_class(t_idx: np.ndarray, p_idx: np.ndarray, names: Sequence[str]) -> tuple[dict, np.ndarray]:
    """Per-class precision, recall, F1 (NaN where 0/0: no warning, expected with rare classes) and support."""
    k = len(names)
    if t_idx.size == 0:  # sklearn refuses empty input
        nan = float("nan")
        empty = {name: {"precision": nan, "recall": nan, "f1": nan, "support": 0} for name in names}
        return empty, np.zeros((k, k), dtype=np.int64)
    cm = skm.confusion_matrix(t_idx, p_idx, labels=range(k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prec, rec, f1, support = skm.precision_recall_fscore_support(
            t_idx, p_idx, labels=range(k), zero_division=np.nan
        )
    per_class = {
        name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(names)
    }
    return per_class, cm


def _warn_undefined(out: dict, n: int, scores: np.ndarray | None) -> None:
    if n == 0:
        _warn("no samples with an expression label: classification metrics set to NaN")
        return
    if math.isnan(out["kappa"]):
        _warn(
            "Cohen's kappa undefined: truth and prediction are the same single class (expected agreement 1); set to NaN"
        )
    if math.isnan(out["krippendorff_alpha"]):
        _warn("Krippendorff's alpha undefined: only one class used by truth and prediction; set to NaN")
    if scores is None:
        _warn("AUC-ROC and AUC-PR need class scores but y_prob is 1-D class predictions; set to NaN")
    elif math.isnan(out["auc_roc"]):
        _warn("AUC-ROC and AUC-PR undefined: fewer than 2 classes present in y_true; set to NaN")


def _classification(
    y_true: Any,
    y_prob: Any,
    labels: Sequence[int],
    names: Sequence[str],
    ci: bool,
    n_boot: int,
    alpha: float,
    seed: int,
    warn: bool,
) -> dict[str, Any]:
    labels = list(labels)
    names = list(names)
    if len(names) != len(labels):
        raise ValueError(f"names has {len(names)} entries but there are {len(labels)} labels")
    t_idx, p_idx, scores = _prepare_classification(y_true, y_prob, labels)
    k = len(labels)
    out: dict[str, Any] = classification_scalars(t_idx, p_idx, scores)
    out["per_class"], cm = _per_class(t_idx, p_idx, names)
    out["confusion_matrix"] = cm.astype(np.int64).tolist()
    if warn:
        _warn_undefined(out, t_idx.size, scores)
    if ci:
        cis = _bootstrap_batched(
            lambda counts: classification_batch(t_idx, p_idx, scores, counts, k),
            t_idx.size,
            CLASSIFICATION_SCALARS,
            n_boot,
            alpha,
            seed,
            out,
        )
        out.update({f"{key}_ci": cis[key] for key in CLASSIFICATION_SCALARS})
    return out


def classification_metrics(
    y_true: Any,
    y_prob: Any,
    labels: Sequence[int] = range(8),
    names: Sequence[str] = EXPRESSIONS,
    *,
    ci: bool = False,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Expression classification metrics.

    ``y_true``: (N,) class ids in ``labels`` (negative or NaN = no label: row ignored). ``y_prob``: (N, K)
    scores in ``labels`` order, ``y_pred = argmax``; or (N,) integer predictions (AUCs then NaN + warning).

    Returns a JSON-serialisable dict:

    * ``accuracy``.
    * ``f1_macro``: unweighted mean of per-class F1 over the classes present in ``y_true`` **or** ``y_pred``.
      A class absent from both has an undefined F1 (0/0) and is left out, not counted as 0. This is
      ``sklearn.metrics.f1_score(y_true, y_pred, average="macro")`` with the default ``labels=None``; it differs
      from passing ``labels=range(8)``, which would average in a 0 for every absent class. A class that is
      predicted but never true does count (F1 = 0).
    * ``f1_weighted``: per-class F1 weighted by support (sklearn ``average="weighted"``).
    * ``kappa``: Cohen's kappa (unweighted), as ``sklearn.metrics.cohen_kappa_score``.
    * ``krippendorff_alpha``: nominal alpha treating truth and prediction as two coders (see
      :func:`krippendorff_alpha_nominal`).
    * ``auc_roc``: macro mean of one-vs-rest ROC AUC over the classes present in ``y_true`` (absent classes are
      skipped: their AUC is undefined). NaN + warning with fewer than 2 classes present. With all K classes
      present this equals ``roc_auc_score(y_true, y_prob, multi_class="ovr", average="macro")``.
    * ``auc_pr``: the same macro mean of one-vs-rest average precision (sklearn ``average_precision_score``).
    * ``per_class``: name -> ``{precision, recall, f1, support}``; precision is NaN for a class never predicted,
      recall for a class with no support, f1 for a class absent from both (no warning for these: expected with
      rare classes).
    * ``confusion_matrix``: K x K list of int lists, rows = truth, columns = prediction, in ``labels`` order.

    With ``ci=True`` adds ``<key>_ci = [low, high]`` for every scalar above (percentile bootstrap over the
    labelled rows, ``n_boot`` resamples at level ``1 - alpha``, ``seed``).
    """
    return _classification(y_true, y_prob, labels, names, ci, n_boot, alpha, seed, warn=True)


def krippendorff_alpha_nominal(y_true: Any, y_pred: Any | None = None) -> float:
    """Krippendorff's alpha for nominal data (Krippendorff 2011), computed by the ``krippendorff`` package.

    Two forms: ``krippendorff_alpha_nominal(y_true, y_pred)`` treats the two 1-D arrays as two coders rating the
    same units; ``krippendorff_alpha_nominal(reliability_data)`` takes a (coders, units) array. NaN marks a
    missing rating; units with fewer than two ratings are not pairable and are left out.

    ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k`` with ``o`` the coincidence matrix,
    ``n_c`` its margins and ``n`` the number of pairable values. Undefined (NaN + warning) when fewer than two
    distinct values occur among the pairable ratings (no expected disagreement).
    """
    if y_pred is None:
        data = np.asarray(y_true, dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"reliability data must be (coders, units), got shape {data.shape}")
    else:
        a = np.asarray(y_true, dtype=np.float64)
        b = np.asarray(y_pred, dtype=np.float64)
        if a.ndim != 1 or a.shape != b.shape:
            raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {a.shape} and {b.shape}")
        data = np.stack([a, b])
    pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    if np.unique(pairable[~np.isnan(pairable)]).size < 2:
        _warn("Krippendorff's alpha undefined: fewer than two distinct values among pairable ratings; set to NaN")
        return float("nan")
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
