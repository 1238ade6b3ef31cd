"""Evaluation metrics for expression classification and valence/arousal regression.

scikit-learn style: every function takes ``(y_true, y_pred)`` (or ``y_prob``) and returns plain Python floats,
so results are JSON-serialisable (NaN stays ``float('nan')``). This package is the reference definition of every
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

Layout: :mod:`.classification` (point estimates from scikit-learn and ``krippendorff``), :mod:`.regression`
(RMSE, CORR, SAGR, CCC), :mod:`.bootstrap` (percentile intervals; vectorised kernels in :mod:`._vectorised`),
:mod:`.summary` (multi-task dict, checkpoint selection score).

References: Cohen (1960) kappa; Krippendorff (2011) "Computing Krippendorff's alpha-reliability";
Lin (1989) "A concordance correlation coefficient to evaluate reproducibility", Biometrics 45:255-268;
Mollahosseini et al. (2017) "AffectNet", IEEE Trans. Affective Computing (RMSE, CORR, SAGR, CCC for valence and
arousal).
"""

from __future__ import annotations

from affectkit.metrics._common import (
    CLASSIFICATION_SCALARS,
    REGRESSION_SCALARS,
    UndefinedMetricWarning,
)
from affectkit.metrics.bootstrap import bootstrap_ci
from affectkit.metrics.classification import (
    classification_metrics,
    krippendorff_alpha_nominal,
)
from affectkit.metrics.regression import (
    ccc,
    pearson_corr,
    regression_metrics,
    rmse,
    sagr,
)
from affectkit.metrics.summary import multitask_metrics, selection_score

__all__ = [
    "UndefinedMetricWarning",
    "rmse",
    "pearson_corr",
    "sagr",
    "ccc",
    "regression_metrics",
    "krippendorff_alpha_nominal",
    "classification_metrics",
    "bootstrap_ci",
    "multitask_metrics",
    "selection_score",
    "CLASSIFICATION_SCALARS",
    "REGRESSION_SCALARS",
]
