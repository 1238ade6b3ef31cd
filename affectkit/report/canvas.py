"""What the report's figures share: the canvas (no pyplot, no display), saving at one dpi, the palette,
and reading metric values (None, empty or unparsable = NaN) and valence/arousal pairs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110
TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#d62728"
# one distinct colour per expression (tab10 without its grey, which marks unlabelled points)
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22")


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out_png: str | Path) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
    return out


def to_float(value: object) -> float:
    """A metric value as float; None, empty strings, unparsable text and non-finite-able values become NaN."""
    if value is None:
        return math.nan
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan


def column(rows: Sequence[Mapping[str, object]], key: str) -> np.ndarray:
    return np.array([to_float(r.get(key)) for r in rows], dtype=float)


def fmt_va(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.2f}"


def va_pairs(va: np.ndarray | Sequence | None, n: int) -> np.ndarray:
    """(n, 2) float array of (valence, arousal); None gives all-NaN."""
    if va is None:
        return np.full((n, 2), np.nan)
    a = np.asarray(va, dtype=float)
    if a.shape != (n, 2):
        raise ValueError(f"valence/arousal must have shape ({n}, 2), got {a.shape}")
    return a
