"""Valence/arousal regression metrics: RMSE, Pearson CORR, SAGR and CCC (Mollahosseini et al. 2017).

Point estimates and bootstrap resamples share one vectorised kernel (:func:`_regression_batch`): these four
have no scikit-learn counterpart with the same NaN conventions (CCC none at all), and the kernel computes all
of them for a whole block of bootstrap weightings at once.

References: Lin (1989) "A concordance correlation coefficient to evaluate reproducibility", Biometrics
45:255-268; Mollahosseini et al. (2017) "AffectNet", IEEE Trans. Affective Computing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from affectkit.metrics._common import REGRESSION_SCALARS, _warn
from affectkit.metrics.bootstrap import _bootstrap_batched

__all__ = ["rmse", "pearson_corr", "sagr", "ccc", "regression_metrics"]


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
                which = (
                    "both y_true and y_pred are" if t_const and p_const else ("y_true is" if t_const else "y_pred is")
                )
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


def regression_metrics(
    y_true: Any, y_pred: Any, *, ci: bool = False, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> dict[str, Any]:
    """RMSE, Pearson corr, SAGR and CCC for one dimension (valence or arousal).

    Returns ``{"rmse", "corr", "sagr", "ccc"}`` as floats (see the individual functions for conventions).
    Rows with a NaN target are left out. With ``ci=True`` adds ``<key>_ci = [low, high]``: percentile
    bootstrap intervals at level ``1 - alpha`` over the labelled rows (``n_boot`` resamples, ``seed``).
    """
    out: dict[str, Any] = _regression_point(y_true, y_pred, REGRESSION_SCALARS)
    if ci:
        t, p, _ = _prepare_regression(y_true, y_pred)
        cis = _bootstrap_batched(
            lambda counts: _regression_batch(t, p, counts), t.size, REGRESSION_SCALARS, n_boot, alpha, seed, out
        )
        out.update({f"{k}_ci": cis[k] for k in REGRESSION_SCALARS})
    return out


def _regression_batched_fn(key: str) -> Callable[..., np.ndarray]:
    def batched(arrays: Sequence[np.ndarray], counts: np.ndarray) -> np.ndarray:
        t, p, keep = _prepare_regression(*arrays)
        return _regression_batch(t, p, counts[:, keep])[key]

    return batched


# Vectorised bootstrap paths used by bootstrap_ci for these functions.
BATCHED: dict[Callable[..., float], Callable[..., np.ndarray]] = {
    rmse: _regression_batched_fn("rmse"),
    pearson_corr: _regression_batched_fn("corr"),
    sagr: _regression_batched_fn("sagr"),
    ccc: _regression_batched_fn("ccc"),
}
