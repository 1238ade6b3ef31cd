"""Numbers and settings as report text: "n/a" for missing values, fixed decimals, durations as "1h 02m 05s"."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from affectkit.report.plots import to_float


def fmt(value: Any, digits: int = 4) -> str:
    """A number for display: NaN/None -> "n/a", integers without decimals, floats with ``digits`` decimals."""
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    x = to_float(value)
    if not math.isfinite(x):
        return (
            "n/a"
            if isinstance(value, (float, np.floating))
            or str(value).strip().lower() in ("", "nan", "none", "null", "inf", "-inf")
            else str(value)
        )
    return f"{x:.{digits}f}"


def fmt_duration(seconds: Any) -> str:
    """Seconds as "1h 02m 05s", "3m 07s" or "42s"; "n/a" when missing."""
    s = to_float(seconds)
    if not math.isfinite(s):
        return "n/a"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else (f"{m}m {sec:02d}s" if m else f"{sec}s")


def config_text(value: Any) -> str:
    """A config value on one line: mappings as ``k=v, ...``, lists comma-separated, floats in short form."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={config_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(config_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
