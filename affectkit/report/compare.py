"""Side-by-side comparison of evaluated runs: one row per metric, one column per model.

Best per row: higher is better, except RMSE where lower is better; ties are all marked; NaN is never best.
The bookkeeping rows (n, epochs, training time) have no direction and are never marked.
"""
from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from affectkit.report.format import fmt, fmt_duration
from affectkit.report.load import RunData, load_run, metric_value
from affectkit.report.render import render

# (row label, value getter, "higher" | "lower" | None)
_Getter = Callable[[RunData], float]
METRIC_ROWS: tuple[tuple[str, _Getter, str | None], ...] = (
    ("Accuracy", lambda r: metric_value(r.metrics, "accuracy"), "higher"),
    ("F1 macro", lambda r: metric_value(r.metrics, "f1_macro"), "higher"),
    ("F1 weighted", lambda r: metric_value(r.metrics, "f1_weighted"), "higher"),
    ("Kappa", lambda r: metric_value(r.metrics, "kappa"), "higher"),
    ("Krippendorff's Alpha", lambda r: metric_value(r.metrics, "krippendorff_alpha"), "higher"),
    ("AUC-ROC", lambda r: metric_value(r.metrics, "auc_roc"), "higher"),
    ("AUC-PR", lambda r: metric_value(r.metrics, "auc_pr"), "higher"),
    *[(f"{t.capitalize()} {label}", (lambda r, t=t, k=key: metric_value(r.metrics, t, k)),
       "lower" if key == "rmse" else "higher")
      for t in ("valence", "arousal") for label, key in (("RMSE", "rmse"), ("CORR", "corr"), ("SAGR", "sagr"),
                                                         ("CCC", "ccc"))],
    ("n", lambda r: metric_value(r.metrics, "n"), None),
    ("Epochs", lambda r: r.epochs_run(), None),
    ("Training time (s)", lambda r: metric_value(r.summary, "wall_time_s"), None),
)


_RESERVED = ("metric", "better", "best")


def _column_names(runs: Sequence[RunData]) -> list[str]:
    """Config ``name`` (or backbone); clashing names get the run folder appended, then a counter if needed."""
    base = [r.display_name for r in runs]
    counts = Counter(base)
    names = [f"{b} ({r.run_dir.name})" if (counts[b] > 1 or b in _RESERVED) and b != r.run_dir.name else b
             for b, r in zip(base, runs, strict=True)]
    names = [f"{n} (run)" if n in _RESERVED else n for n in names]
    seen: Counter = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if names.count(name) == 1 else f"{name} #{seen[name]}")
    return out


def best_columns(values: dict[str, float], better: str | None) -> list[str]:
    """Columns holding the best finite value (all of them on a tie); empty when no direction or all NaN."""
    finite = {k: v for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    if better is None or not finite:
        return []
    target = max(finite.values()) if better == "higher" else min(finite.values())
    return [k for k, v in finite.items() if math.isclose(v, target, rel_tol=1e-9, abs_tol=1e-12)]


def _load_evaluated(run_dirs: Sequence[str | Path], split: str) -> list[RunData]:
    if not run_dirs:
        raise ValueError("compare needs at least one run folder")
    runs = []
    for d in run_dirs:
        run = load_run(d, split)
        if run.metrics is None:
            raise FileNotFoundError(f"run {run.run_dir}: no evaluation metrics at {run.metrics_path} "
                                    f"(evaluate it on split {split!r} first)")
        runs.append(run)
    return runs


def comparison_table(run_dirs: Sequence[str | Path], split: str = "test") -> list[dict[str, Any]]:
    """The comparison as rows, one dict per metric.

    Each dict has ``"metric"`` (row label), ``"better"`` ("higher", "lower" or None), one key per model column
    (float, NaN when absent) and ``"best"`` (list of the best columns). Column order is the order of
    ``run_dirs``; read it from ``columns(...)`` or from the dict keys between "better" and "best".
    Raises FileNotFoundError naming the folder of a run without ``eval/<split>_metrics.json``.
    """
    runs = _load_evaluated(run_dirs, split)
    cols = _column_names(runs)
    table = []
    for label, getter, better in METRIC_ROWS:
        values = {c: float(getter(r)) for c, r in zip(cols, runs, strict=True)}
        table.append({"metric": label, "better": better, **values, "best": best_columns(values, better)})
    return table


def columns(table: list[dict[str, Any]]) -> list[str]:
    """Model column names of a ``comparison_table`` result, in order."""
    if not table:
        return []
    return [k for k in table[0] if k not in _RESERVED]


def _display(label: str, value: float) -> str:
    if label == "Training time (s)":
        return fmt_duration(value)
    if label in ("n", "Epochs"):
        return "n/a" if not math.isfinite(value) else str(int(round(value)))
    return fmt(value)


def _csv_number(value: float) -> str:
    if not math.isfinite(value):
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, split: str = "test") -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.html`` and ``comparison.csv`` into ``out_dir``.

    Best values are bold in Markdown/HTML; the CSV keeps full-precision numbers (empty = NaN) plus a ``best``
    column listing the best models separated by ";". Returns {"md": ..., "html": ..., "csv": ...}.
    """
    table = comparison_table(run_dirs, split)
    cols = columns(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = ["Metric", *cols]
    # Markdown/HTML show the duration as "1h 02m 05s"; the CSV keeps seconds under the "(s)" label
    rows = [[r["metric"].removesuffix(" (s)")] + [_display(r["metric"], r[c]) for c in cols] for r in table]
    bold = {(i, 1 + cols.index(c)) for i, r in enumerate(table) for c in r["best"]}
    folders = [[c, str(Path(d))] for c, d in zip(cols, run_dirs, strict=True)]
    note = ("Best per row in bold: higher is better, except RMSE (lower is better). "
            "n, epochs and training time are not ranked.")

    paths = {"md": out / "comparison.md", "html": out / "comparison.html", "csv": out / "comparison.csv"}
    context = {"title": f"Model comparison ({split})", "note": note, "header": header, "rows": rows, "best": bold,
               "folders": folders}
    paths["md"].write_text(render("comparison.md", **context), encoding="utf-8")
    paths["html"].write_text(render("comparison.html", **context), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["metric", *cols, "better", "best"])
        for r in table:
            writer.writerow([r["metric"], *(_csv_number(r[c]) for c in cols),
                             r["better"] or "", ";".join(r["best"])])
    return paths
