"""The vectorised bootstrap kernels equal scikit-learn / scipy / krippendorff on the resampled rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import root_mean_squared_error

from affectkit.metrics._common import CLASSIFICATION_SCALARS, REGRESSION_SCALARS
from affectkit.metrics._vectorised import classification_batch
from affectkit.metrics.bootstrap import _counts, _index_blocks
from affectkit.metrics.classification import classification_scalars
from affectkit.metrics.regression import _regression_batch


def _resamples(n, n_boot=6, seed=4):
    idx = next(_index_blocks(n, n_boot, seed))
    return idx, _counts(idx, n)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("present", [range(8), (0, 2, 5)])
def test_classification_kernel_equals_sklearn_on_resamples(ties, present):
    rng = np.random.default_rng(7)
    n, k = 120, 8
    t = rng.choice(list(present), n)
    scores = rng.random((n, k))
    if ties:
        scores = np.round(scores, 1)
    scores[np.arange(n) % 3 == 0, t[np.arange(n) % 3 == 0]] += 0.5  # better than chance
    p = scores.argmax(axis=1)
    idx, counts = _resamples(n)
    batch = classification_batch(t, p, scores, counts, k)
    for b, rows in enumerate(idx):
        ref = classification_scalars(t[rows], p[rows], scores[rows])
        for key in CLASSIFICATION_SCALARS:
            assert batch[key][b] == pytest.approx(ref[key], abs=1e-9, nan_ok=True), (key, b)


def test_classification_kernel_single_class_resample_is_nan_like_the_library():
    t = np.array([3, 3, 3, 3])
    scores = np.eye(8)[[3, 3, 3, 1]]
    p = scores.argmax(axis=1)
    counts = np.array([[4.0, 0, 0, 0]])  # only row 0 drawn: truth and prediction one class
    batch = classification_batch(t, p, scores, counts, 8)
    ref = classification_scalars(t[[0, 0, 0, 0]], p[[0, 0, 0, 0]], scores[[0, 0, 0, 0]])
    for key in CLASSIFICATION_SCALARS:
        assert np.isnan(ref[key]) == np.isnan(batch[key][0]), key
    assert np.isnan(batch["kappa"][0]) and batch["accuracy"][0] == 1.0


def test_regression_kernel_equals_scipy_sklearn_on_resamples():
    rng = np.random.default_rng(3)
    t = rng.uniform(-1, 1, 90)
    p = np.clip(t + rng.normal(0, 0.4, 90), -1, 1)
    idx, counts = _resamples(90)
    batch = _regression_batch(t, p, counts)
    for b, rows in enumerate(idx):
        tr, pr = t[rows], p[rows]
        ref = {
            "rmse": root_mean_squared_error(tr, pr),
            "corr": pearsonr(tr, pr).statistic,
            "sagr": np.mean(np.sign(tr) == np.sign(pr)),
            "ccc": 2 * np.cov(tr, pr, ddof=0)[0, 1] / (tr.var() + pr.var() + (tr.mean() - pr.mean()) ** 2),
        }
        for key in REGRESSION_SCALARS:
            assert batch[key][b] == pytest.approx(ref[key], abs=1e-9), (key, b)
