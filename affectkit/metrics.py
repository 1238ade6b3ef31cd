"""Evaluation metrics for expression classification and valence/arousal regression.

scikit-learn style: every function takes ``(y_true, y_pred)`` (or ``y_prob``) and returns plain Python floats,
so results are JSON-serialisable (NaN stays ``float('nan')``). This module is the reference definition of every
number affectkit reports; other modules call it rather than re-implementing a metric.

Conventions shared by all functions:

* **Undefined is NaN, never 0 and never a crash.** Whenever a metric is mathematically undefined (empty input,
  constant series, too few classes) the value is ``nan`` and an :class:`UndefinedMetricWarning` says why.
* **Missing labels are left out.** Regression targets that are NaN (a sample without that label) are ignored,
  together with their predictions. In classification, a negative (or NaN) ``y_true`` means "no expression label"
  and the row is ignored. A prediction that is NaN where the target is known is an error (``ValueError``).
* **Classification scores.** ``y_prob`` is ``(N, K)`` scores in ``labels`` order (probabilities, or logits: only
  the ranking and the argmax are used); ``y_pred = argmax(y_prob)`` (first maximum on ties). A 1-D ``y_prob`` is
  taken as integer class predictions; then the score-based AUCs are NaN (with a warning).
* **Bootstrap.** Confidence intervals are percentile bootstrap intervals (Efron & Tibshirani 1993, ch. 13) over
  rows resampled with replacement; ``seed`` makes them reproducible.

References: Cohen (1960) kappa; Krippendorff (2011) "Computing Krippendorff's alpha-reliability";
Lin (1989) "A concordance correlation coefficient to evaluate reproducibility", Biometrics 45:255-268;
Mollahosseini et al. (2017) "AffectNet", IEEE Trans. Affective Computing (RMSE, CORR, SAGR, CCC for valence and
arousal).
"""
from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from affectkit.labels import EXPRESSIONS

__all__ = [
    "UndefinedMetricWarning",
    "rmse", "pearson_corr", "sagr", "ccc", "regression_metrics",
    "krippendorff_alpha_nominal", "classification_metrics",
    "bootstrap_ci", "multitask_metrics", "selection_score",
    "CLASSIFICATION_SCALARS", "REGRESSION_SCALARS",
]

CLASSIFICATION_SCALARS = ("accuracy", "f1_macro", "f1_weighted", "kappa", "krippendorff_alpha", "auc_roc", "auc_pr")
REGRESSION_SCALARS = ("rmse", "corr", "sagr", "ccc")

# Bootstrap resamples are processed in blocks of about this many (resample x row) cells to bound memory.
_BLOCK_CELLS = 1_000_000


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the given input; its value was set to NaN."""


def _warn(message: str) -> None:
    # Attribute the warning to the first caller outside this module, however deep the internal call.
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back
    warnings.warn(message, UndefinedMetricWarning, stacklevel=level)


# ----------------------------------------------------------------------------------------------------------
# Regression
# ----------------------------------------------------------------------------------------------------------

def _prepare_regression(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate; return (targets, predictions, kept-row mask) with NaN-target rows removed."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D, got shapes {t.shape} and {p.shape}")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    keep = ~np.isnan(t)
    if np.isinf(t).any():
        raise ValueError("y_true contains infinite values")
    bad = ~np.isfinite(p[keep])
    if bad.any():
        raise ValueError(f"y_pred is NaN or infinite at {int(bad.sum())} rows whose target is known")
    return t[keep], p[keep], keep


def _regression_batch(t: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """All regression metrics for B weightings at once.

    ``t``, ``p``: (N,) finite; ``w``: (B, N) non-negative counts (ones for the plain estimate, bootstrap
    multiplicities otherwise). Returns key -> (B,) arrays. Population (ddof=0) moments throughout.
    """
    with np.errstate(all="ignore"):
        total = w.sum(axis=1)
        drawn = w > 0
        # Exact constancy (over drawn rows) rather than a variance threshold: rounding makes the variance of a
        # constant series tiny but nonzero, which would turn corr into noise.
        t_min = np.where(drawn, t, np.inf).min(axis=1, initial=np.inf)
        t_const = t_min == np.where(drawn, t, -np.inf).max(axis=1, initial=-np.inf)
        p_min = np.where(drawn, p, np.inf).min(axis=1, initial=np.inf)
        p_const = p_min == np.where(drawn, p, -np.inf).max(axis=1, initial=-np.inf)
        mt = np.where(t_const, t_min, (w @ t) / total)
        mp = np.where(p_const, p_min, (w @ p) / total)
        dt = t[None, :] - mt[:, None]
        dp = p[None, :] - mp[:, None]
        vt = np.where(t_const, 0.0, (w * dt * dt).sum(axis=1) / total)
        vp = np.where(p_const, 0.0, (w * dp * dp).sum(axis=1) / total)
        cov = np.where(t_const | p_const, 0.0, (w * dt * dp).sum(axis=1) / total)
        err = t - p
        rmse_ = np.sqrt((w @ (err * err)) / total)
        sagr_ = (w @ (np.sign(t) == np.sign(p)).astype(np.float64)) / total
        corr_ = np.clip(cov / np.sqrt(vt * vp), -1.0, 1.0)
        corr_ = np.where(t_const | p_const, np.nan, corr_)
        denom = vt + vp + (mt - mp) ** 2
        ccc_ = np.where(denom > 0, np.clip(2.0 * cov / np.where(denom > 0, denom, 1.0), -1.0, 1.0), np.nan)
    empty = total <= 0
    out = {"rmse": rmse_, "corr": corr_, "sagr": sagr_, "ccc": ccc_}
    return {k: np.where(empty, np.nan, v) for k, v in out.items()}


def _regression_point(y_true: Any, y_pred: Any, keys: Sequence[str], warn: bool = True) -> dict[str, float]:
    t, p, _ = _prepare_regression(y_true, y_pred)
    res = _regression_batch(t, p, np.ones((1, t.size)))
    out = {k: float(res[k][0]) for k in keys}
    if warn:
        if t.size == 0:
            _warn(f"no samples with a target: {', '.join(keys)} set to NaN")
        else:
            t_const = t.min() == t.max()
            p_const = p.min() == p.max()
            if "corr" in keys and math.isnan(out["corr"]):
                which = "both y_true and y_pred are" if t_const and p_const else ("y_true is" if t_const else "y_pred is")
                _warn(f"Pearson correlation undefined: {which} constant; set to NaN")
            if "ccc" in keys and math.isnan(out["ccc"]):
                _warn("CCC undefined: y_true and y_pred are both constant and equal (zero denominator); set to NaN")
    return out


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error ``sqrt(mean((y_true - y_pred)**2))``. NaN targets are ignored."""
    return _regression_point(y_true, y_pred, ("rmse",))["rmse"]


def pearson_corr(y_true: Any, y_pred: Any) -> float:
    """Pearson correlation (same value as ``scipy.stats.pearsonr``). NaN targets are ignored.

    Undefined (NaN + warning) when either series is constant or fewer than 2 samples remain.
    """
    return _regression_point(y_true, y_pred, ("corr",))["corr"]


def sagr(y_true: Any, y_pred: Any) -> float:
    """Sign agreement: ``mean(np.sign(y_true) == np.sign(y_pred))`` (Mollahosseini et al. 2017).

    Uses ``np.sign``, so 0 is a sign of its own: a 0 target agrees only with a 0 prediction, and a positive or
    negative target never agrees with a 0 prediction. NaN targets are ignored.
    """
    return _regression_point(y_true, y_pred, ("sagr",))["sagr"]


def ccc(y_true: Any, y_pred: Any) -> float:
    """Lin's (1989) concordance correlation coefficient.

    ``2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))**2)`` with population (biased, ddof=0) variances and
    covariance. Defined whenever the denominator is positive: a constant prediction of a varying target gives
    ccc = 0 (cov is 0), as do two different constants. Undefined (NaN + warning) only when both series are the same
    constant, or when no sample remains. NaN targets are ignored.
    """
    return _regression_point(y_true, y_pred, ("ccc",))["ccc"]


def regression_metrics(y_true: Any, y_pred: Any, *, ci: bool = False, n_boot: int = 1000, alpha: float = 0.05,
                       seed: int = 0) -> dict[str, Any]:
    """RMSE, Pearson corr, SAGR and CCC for one dimension (valence or arousal).

    Returns ``{"rmse", "corr", "sagr", "ccc"}`` as floats (see the individual functions for conventions).
    Rows with a NaN target are left out. With ``ci=True`` adds ``<key>_ci = [low, high]``: percentile
    bootstrap intervals at level ``1 - alpha`` over the labelled rows (``n_boot`` resamples, ``seed``).
    """
    out: dict[str, Any] = _regression_point(y_true, y_pred, REGRESSION_SCALARS)
    if ci:
        t, p, _ = _prepare_regression(y_true, y_pred)
        cis = _bootstrap_batched(lambda counts: _regression_batch(t, p, counts), t.size, REGRESSION_SCALARS,
                                 n_boot, alpha, seed, out)
        out.update({f"{k}_ci": cis[k] for k in REGRESSION_SCALARS})
    return out


# ----------------------------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------------------------

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


def _prepare_classification(y_true: Any, y_prob: Any, labels: Sequence[int]
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
        raise ValueError(f"y_prob must be (N, {lab.size}) scores or (N,) predictions for N={t.shape[0]} labels, "
                         f"got shape {s.shape}")
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


def _confusion_batch(t_idx: np.ndarray, p_idx: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """(B, K, K) weighted confusion matrices, rows = truth."""
    cell = t_idx * k + p_idx
    out = np.zeros((w.shape[0], k * k))
    for c in np.unique(cell):  # at most K*K columns: cheaper than a dense (N, K*K) one-hot for large N
        out[:, c] = w[:, cell == c].sum(axis=1)
    return out.reshape(w.shape[0], k, k)


def _from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Count-based metrics from (B, K, K) confusion matrices, each (B,)."""
    with np.errstate(all="ignore"):
        n = cm.sum(axis=(1, 2))
        tp = np.diagonal(cm, axis1=1, axis2=2)
        support = cm.sum(axis=2)
        predicted = cm.sum(axis=1)
        trace = tp.sum(axis=1)
        # 2tp + fp + fn = support + predicted; zero only for a class absent from truth and prediction.
        f1_den = support + predicted
        f1 = np.where(f1_den > 0, 2 * tp / np.where(f1_den > 0, f1_den, 1), np.nan)
        present = f1_den > 0
        f1_macro = np.where(present.any(axis=1), np.where(present, f1, 0).sum(axis=1) / present.sum(axis=1), np.nan)
        f1_weighted = np.where(present, f1 * support, 0).sum(axis=1) / n
        rc = (support * predicted).sum(axis=1)
        kappa_den = n * n - rc  # = n^2 (1 - p_e); written in counts to keep it exact
        kappa = np.where(kappa_den > 0, (n * trace - rc) / np.where(kappa_den > 0, kappa_den, 1), np.nan)
        # Krippendorff's nominal alpha with truth and prediction as two coders: coincidence matrix
        # o = C + C^T, n_c = support + predicted, total 2n pairable values.
        nt = 2 * n
        nc = support + predicted
        alpha_den = nt * nt - (nc * nc).sum(axis=1)
        alpha_ = np.where(alpha_den > 0,
                          1 - (nt - 1) * 2 * (n - trace) / np.where(alpha_den > 0, alpha_den, 1), np.nan)
        acc = trace / n
    empty = n <= 0
    out = {"accuracy": acc, "f1_macro": f1_macro, "f1_weighted": f1_weighted, "kappa": kappa,
           "krippendorff_alpha": alpha_}
    return {k: np.where(empty, np.nan, v) for k, v in out.items()}


def _auc_batch(scores: np.ndarray, t_idx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Macro one-vs-rest ROC AUC and average precision, (B,) each, for weights ``w`` (B, N).

    A class is averaged only where it has weight among positives; NaN when fewer than 2 classes have any.
    ROC AUC is the Mann-Whitney statistic with ties counted 1/2 (= sklearn's trapezoidal AUC); AP is
    sum_n (R_n - R_{n-1}) P_n over distinct score thresholds (= sklearn's average_precision_score).
    """
    b, k = w.shape[0], scores.shape[1]
    roc = np.full((b, k), np.nan)
    ap = np.full((b, k), np.nan)
    with np.errstate(all="ignore"):
        for c in range(k):
            pos = t_idx == c
            if not pos.any():
                continue
            order = np.argsort(scores[:, c], kind="stable")
            s = scores[order, c]
            starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
            wo = w[:, order]
            wp = wo * pos[order]
            wo -= wp  # now the negatives' weights
            if starts.size == s.size:  # no ties: every row is its own group
                gp, gn = wp, wo
            else:  # per tie group, ascending score
                gp, gn = np.add.reduceat(wp, starts, axis=1), np.add.reduceat(wo, starts, axis=1)
            n_pos = gp.sum(axis=1)
            n_neg = gn.sum(axis=1)
            below = np.cumsum(gn, axis=1) - gn
            roc_c = (gp * (below + 0.5 * gn)).sum(axis=1) / (n_pos * n_neg)
            roc[:, c] = np.where((n_pos > 0) & (n_neg > 0), roc_c, np.nan)
            gp_d, gn_d = gp[:, ::-1], gn[:, ::-1]  # descending thresholds
            ctp = np.cumsum(gp_d, axis=1)
            cpred = ctp + np.cumsum(gn_d, axis=1)
            prec = np.divide(ctp, cpred, out=np.zeros_like(ctp), where=cpred > 0)
            ap[:, c] = np.where(n_pos > 0, (gp_d * prec).sum(axis=1) / n_pos, np.nan)
        n_present = (~np.isnan(ap)).sum(axis=1)
        enough = n_present >= 2
        roc_macro = np.where(enough, np.nansum(roc, axis=1) / np.maximum(n_present, 1), np.nan)
        ap_macro = np.where(enough, np.nansum(ap, axis=1) / np.maximum(n_present, 1), np.nan)
    return roc_macro, ap_macro


def _classification_batch(t_idx: np.ndarray, p_idx: np.ndarray, scores: np.ndarray | None, w: np.ndarray,
                          k: int) -> dict[str, np.ndarray]:
    out = _from_confusion(_confusion_batch(t_idx, p_idx, w, k))
    if scores is None:
        out["auc_roc"] = out["auc_pr"] = np.full(w.shape[0], np.nan)
    else:
        out["auc_roc"], out["auc_pr"] = _auc_batch(scores, t_idx, w)
    return out


def _nan_or_float(x: float) -> float:
    return float(x) if np.isfinite(x) else float("nan")


def _classification(y_true: Any, y_prob: Any, labels: Sequence[int], names: Sequence[str], ci: bool,
                    n_boot: int, alpha: float, seed: int, warn: bool) -> dict[str, Any]:
    labels = list(labels)
    names = list(names)
    if len(names) != len(labels):
        raise ValueError(f"names has {len(names)} entries but there are {len(labels)} labels")
    t_idx, p_idx, scores = _prepare_classification(y_true, y_prob, labels)
    k = len(labels)
    w = np.ones((1, t_idx.size))
    cm = _confusion_batch(t_idx, p_idx, w, k)[0]
    res = _classification_batch(t_idx, p_idx, scores, w, k)
    out: dict[str, Any] = {key: _nan_or_float(res[key][0]) for key in CLASSIFICATION_SCALARS}
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    per_class = {}
    for i, name in enumerate(names):
        den = support[i] + predicted[i]
        per_class[name] = {
            "precision": float(tp[i] / predicted[i]) if predicted[i] > 0 else float("nan"),
            "recall": float(tp[i] / support[i]) if support[i] > 0 else float("nan"),
            "f1": float(2 * tp[i] / den) if den > 0 else float("nan"),
            "support": int(support[i]),
        }
    out["per_class"] = per_class
    out["confusion_matrix"] = cm.astype(np.int64).tolist()
    if warn:
        if t_idx.size == 0:
            _warn("no samples with an expression label: classification metrics set to NaN")
        else:
            if math.isnan(out["kappa"]):
                _warn("Cohen's kappa undefined: truth and prediction are the same single class "
                      "(expected agreement 1); set to NaN")
            if math.isnan(out["krippendorff_alpha"]):
                _warn("Krippendorff's alpha undefined: only one class used by truth and prediction; set to NaN")
            if scores is None:
                _warn("AUC-ROC and AUC-PR need class scores but y_prob is 1-D class predictions; set to NaN")
            elif math.isnan(out["auc_roc"]):
                _warn("AUC-ROC and AUC-PR undefined: fewer than 2 classes present in y_true; set to NaN")
    if ci:
        cis = _bootstrap_batched(lambda counts: _classification_batch(t_idx, p_idx, scores, counts, k),
                                 t_idx.size, CLASSIFICATION_SCALARS, n_boot, alpha, seed, out)
        out.update({f"{key}_ci": cis[key] for key in CLASSIFICATION_SCALARS})
    return out


def classification_metrics(y_true: Any, y_prob: Any, labels: Sequence[int] = range(8),
                           names: Sequence[str] = EXPRESSIONS, *, ci: bool = False, n_boot: int = 1000,
                           alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------------------------------------
# Krippendorff's alpha (general form)
# ----------------------------------------------------------------------------------------------------------

def krippendorff_alpha_nominal(y_true: Any, y_pred: Any | None = None) -> float:
    """Krippendorff's alpha for nominal data, computed through the coincidence matrix (Krippendorff 2011).

    Two forms: ``krippendorff_alpha_nominal(y_true, y_pred)`` treats the two 1-D arrays as two coders rating the
    same units; ``krippendorff_alpha_nominal(reliability_data)`` takes a (coders, units) array. NaN marks a
    missing rating; units with fewer than two ratings are not pairable and are left out.

    ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k`` with ``o`` the coincidence matrix,
    ``n_c`` its margins and ``n`` the number of pairable values. Agrees with the ``krippendorff`` package
    (``level_of_measurement="nominal"``). Undefined (NaN + warning) when fewer than two distinct values occur
    among the pairable ratings (no expected disagreement).
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
    rated = ~np.isnan(data)
    values, inverse = np.unique(data[rated], return_inverse=True)
    counts = np.zeros((data.shape[1], values.size))  # (units, values): how many coders gave each value
    np.add.at(counts, (np.nonzero(rated)[1], inverse), 1)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    # o_ck = sum_u (n_uc n_uk - [c == k] n_uc) / (m_u - 1)
    scaled = counts / (m - 1)[:, None]
    o = scaled.T @ counts - np.diag(scaled.sum(axis=0))
    nc = o.sum(axis=1)
    n = nc.sum()
    expected = n * n - (nc * nc).sum()
    if expected <= 0:
        _warn("Krippendorff's alpha undefined: fewer than two distinct values among pairable ratings; set to NaN")
        return float("nan")
    return float(1 - (n - 1) * (n - np.trace(o)) / expected)


# ----------------------------------------------------------------------------------------------------------
# Bootstrap
# ----------------------------------------------------------------------------------------------------------

def _index_blocks(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Resample indices in (block, n) chunks; the block size depends on n only, so every caller with the same
    (n, n_boot, seed) sees the same resamples."""
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    for start in range(0, n_boot, block):
        yield rng.integers(0, n, size=(min(block, n_boot - start), n))


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, n) multiplicity of each row in each resample."""
    b = idx.shape[0]
    flat = (np.arange(b)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def _check_boot_args(n_boot: int, alpha: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _percentile_interval(values: np.ndarray, alpha: float, name: str) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        _warn(f"bootstrap CI of {name} undefined: the metric is undefined on every resample")
        return [float("nan"), float("nan")]
    if finite.size < values.size:
        _warn(f"bootstrap CI of {name}: {values.size - finite.size} of {values.size} resamples undefined, "
              "interval from the rest")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return [float(low), float(high)]


def _bootstrap_batched(batch_fn: Callable[[np.ndarray], dict[str, np.ndarray]], n: int, keys: Sequence[str],
                       n_boot: int, alpha: float, seed: int, point: dict[str, Any]) -> dict[str, list[float]]:
    """CIs for ``keys``; a key whose point estimate is already NaN (and warned about) gets [nan, nan] quietly."""
    _check_boot_args(n_boot, alpha)
    nan_pair = [float("nan"), float("nan")]
    defined = [k for k in keys if not math.isnan(point[k])]
    if n == 0 or not defined:
        return {k: list(nan_pair) for k in keys}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for idx in _index_blocks(n, int(n_boot), seed):
        res = batch_fn(_counts(idx, n))
        for k in keys:
            parts[k].append(res[k])
    return {k: _percentile_interval(np.concatenate(parts[k]), alpha, k) if k in defined else list(nan_pair)
            for k in keys}


def _regression_batched_fn(key: str) -> Callable[..., np.ndarray]:
    def batched(arrays: Sequence[np.ndarray], counts: np.ndarray) -> np.ndarray:
        t, p, keep = _prepare_regression(*arrays)
        return _regression_batch(t, p, counts[:, keep])[key]
    return batched


# Vectorised bootstrap paths for our own metric functions; anything else is resampled in a Python loop.
_BATCHED: dict[Callable[..., float], Callable[..., np.ndarray]] = {
    rmse: _regression_batched_fn("rmse"),
    pearson_corr: _regression_batched_fn("corr"),
    sagr: _regression_batched_fn("sagr"),
    ccc: _regression_batched_fn("ccc"),
}


def bootstrap_ci(metric_fn: Callable[..., float], *arrays: Any, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval ``(low, high)`` of ``metric_fn(*arrays)`` at level ``1 - alpha``.

    Rows (the first axis, shared by all arrays) are resampled with replacement ``n_boot`` times with
    ``numpy.random.default_rng(seed)``; the interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles of the
    resampled values. Resamples where the metric is NaN are dropped (warning); all NaN or empty input gives
    ``(nan, nan)``. :func:`rmse`, :func:`pearson_corr`, :func:`sagr` and :func:`ccc` run vectorised; any other
    callable is evaluated once per resample, with its :class:`UndefinedMetricWarning` silenced.
    """
    _check_boot_args(n_boot, alpha)
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    n = arrs[0].shape[0] if arrs[0].ndim else 0
    if any(a.ndim == 0 or a.shape[0] != n for a in arrs):
        raise ValueError(f"arrays must share their first dimension, got shapes {[a.shape for a in arrs]}")
    name = getattr(metric_fn, "__name__", "metric")
    if n == 0:
        _warn(f"bootstrap CI of {name} undefined on empty input; set to NaN")
        return float("nan"), float("nan")
    batched = _BATCHED.get(metric_fn)
    values = []
    for idx in _index_blocks(n, int(n_boot), seed):
        if batched is not None:
            values.append(batched(arrs, _counts(idx, n)))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            values.append(np.array([float(metric_fn(*(a[row] for a in arrs))) for row in idx]))
    low, high = _percentile_interval(np.concatenate(values), alpha, name)
    return low, high


# ----------------------------------------------------------------------------------------------------------
# Multi-task summary and checkpoint selection
# ----------------------------------------------------------------------------------------------------------

def multitask_metrics(y_true: Any, y_prob: Any, valence_true: Any, valence_pred: Any, arousal_true: Any,
                      arousal_pred: Any, *, labels: Sequence[int] = range(8), names: Sequence[str] = EXPRESSIONS,
                      ci: bool = False, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Expression, valence and arousal metrics of one evaluation, as one JSON-serialisable dict.

    Top level: the :func:`classification_metrics` keys, plus ``valence`` and ``arousal`` dicts with the
    :func:`regression_metrics` keys, plus ``n`` (rows), ``n_expression``, ``n_valence``, ``n_arousal`` (rows
    labelled for each task). All arrays are row-aligned. A row whose label is missing (expression < 0 or NaN,
    valence/arousal NaN) is left out of that task only. A task whose true and predicted arrays are both ``None``
    (a model or dataset without it) gets NaN metrics without warnings. With ``ci=True`` each task is
    bootstrapped separately over its own labelled rows, adding ``<key>_ci`` entries.
    """
    pairs = {"expression": (y_true, y_prob), "valence": (valence_true, valence_pred),
             "arousal": (arousal_true, arousal_pred)}
    lengths = {}
    for task, (truth, pred) in pairs.items():
        if (truth is None) != (pred is None):
            raise ValueError(f"{task}: give both the true and the predicted array, or neither")
        if truth is not None:
            lengths[f"{task} truth"] = len(truth)
            lengths[f"{task} prediction"] = len(pred)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays differ in length: {lengths}")
    n = next(iter(lengths.values()), 0)
    boot = {"ci": ci, "n_boot": n_boot, "alpha": alpha, "seed": seed}

    if y_true is None:
        out = _classification(np.zeros(0, dtype=np.int64), np.zeros((0, len(list(labels)))), labels, names,
                              ci=False, n_boot=n_boot, alpha=alpha, seed=seed, warn=False)
        if ci:
            out.update({f"{k}_ci": [float("nan"), float("nan")] for k in CLASSIFICATION_SCALARS})
        n_expression = 0
    else:
        out = _classification(y_true, y_prob, labels, names, warn=True, **boot)
        n_expression = sum(row["support"] for row in out["per_class"].values())

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
