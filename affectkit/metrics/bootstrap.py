"""Percentile bootstrap confidence intervals (Efron & Tibshirani 1993, ch. 13).

Rows are resampled with replacement with ``numpy.random.default_rng(seed)``. A resample is represented by
the multiplicity of each row (a (B, N) count matrix), so the vectorised kernels of :mod:`.regression` and
:mod:`._vectorised` evaluate a whole block of resamples as weighted statistics; they equal the library
functions applied to the resampled rows (tests/test_metrics_bootstrap.py) and are much faster than calling
them once per resample (bench/metrics_bootstrap.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from affectkit.metrics._common import UndefinedMetricWarning, _warn

__all__ = ["bootstrap_ci"]

# Bootstrap resamples are processed in blocks of about this many (resample x row) cells to bound memory.
_BLOCK_CELLS = 1_000_000


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
        _warn(
            f"bootstrap CI of {name}: {values.size - finite.size} of {values.size} resamples undefined, "
            "interval from the rest"
        )
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return [float(low), float(high)]


def _bootstrap_batched(
    batch_fn: Callable[[np.ndarray], dict[str, np.ndarray]],
    n: int,
    keys: Sequence[str],
    n_boot: int,
    alpha: float,
    seed: int,
    point: dict[str, Any],
) -> dict[str, list[float]]:
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
    return {
        k: _percentile_interval(np.concatenate(parts[k]), alpha, k) if k in defined else list(nan_pair) for k in keys
    }


def bootstrap_ci(
    metric_fn: Callable[..., float], *arrays: Any, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
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
    from affectkit.metrics.regression import BATCHED  # imports this module

    batched = BATCHED.get(metric_fn)
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
