"""Reports: per-run HTML/Markdown reports with figures, and side-by-side comparison of runs."""

from __future__ import annotations

from affectkit.report.compare import compare_runs, comparison_table
from affectkit.report.plots import (
    plot_circumplex,
    plot_confusion,
    plot_per_class,
    plot_sample_grid,
    plot_training_curves,
)
from affectkit.report.writer import load_run, write_report

__all__ = [
    "compare_runs",
    "comparison_table",
    "load_run",
    "write_report",
    "plot_circumplex",
    "plot_confusion",
    "plot_per_class",
    "plot_sample_grid",
    "plot_training_curves",
]
