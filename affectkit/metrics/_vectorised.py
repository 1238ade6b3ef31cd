"""Vectorised classification statistics over many row weightings at once (bootstrap resamples).

Each function takes class indices of the labelled rows and a (B, N) weight matrix (bootstrap multiplicities)
and returns (B,) arrays. With all-ones weights they equal scikit-learn / krippendorff on the plain data, and
with multiplicities they equal those libraries on the resampled rows; they exist only because they are much
faster than calling the libraries once per resample (bench/metrics_bootstrap.py).
"""

from __future__ import annotations

import numpy as np

__all__ = ["classification_batch"]


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
        alpha_ = np.where(alpha_den > 0, 1 - (nt - 1) * 2 * (n - trace) / np.where(alpha_den > 0, alpha_den, 1), np.nan)
        acc = trace / n
    empty = n <= 0
    out = {
        "accuracy": acc,
        "f1_macro": f1_macro,
        "f1_weighted": f1_weighted,
        "kappa": kappa,
        "krippendorff_alpha": alpha_,
    }
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


def classification_batch(
    t_idx: np.ndarray, p_idx: np.ndarray, scores: np.ndarray | None, w: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    out = _from_confusion(_confusion_batch(t_idx, p_idx, w, k))
    if scores is None:
        out["auc_roc"] = out["auc_pr"] = np.full(w.shape[0], np.nan)
    else:
        out["auc_roc"], out["auc_pr"] = _auc_batch(scores, t_idx, w)
    return out
