"""Shared conventions of the metrics package: the undefined-metric warning and the reported scalar keys."""

from __future__ import annotations

import os
import sys
import types
import warnings

import numpy as np

__all__ = ["UndefinedMetricWarning", "CLASSIFICATION_SCALARS", "REGRESSION_SCALARS"]

CLASSIFICATION_SCALARS = ("accuracy", "f1_macro", "f1_weighted", "kappa", "krippendorff_alpha", "auc_roc", "auc_pr")
REGRESSION_SCALARS = ("rmse", "corr", "sagr", "ccc")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the given input; its value was set to NaN."""


def _warn(message: str) -> None:
    # Attribute the warning to the first caller outside this package, however deep the internal call.
    level = 2
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR:
        level, frame = level + 1, frame.f_back
    warnings.warn(message, UndefinedMetricWarning, stacklevel=level)


def _nan_or_float(x: float) -> float:
    return float(x) if np.isfinite(x) else float("nan")
