"""Side-by-side comparison of evaluated runs: one row per metric, one column per model (or per dataset).

Columns are run folders (their ``eval/<split>_metrics.json``) or evaluation files themselves; evaluation files
are named by their dataset, so one model evaluated on several datasets compares dataset by dataset.

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
    *[
        (
            f"{t.capitalize()} {label}",
            (lambda r, t=t, k=key: metric_value(r.metrics, t, k)),
            "lower" if key == "rmse" else "higher",
        )
        for t in ("valence", "arousal")
        for label, key in (("RMSE", "rmse"), ("CORR", "corr"), ("SAGR", "sagr"), ("CCC", "ccc"))
    ],
    ("n", lambda r: metric_value(r.metrics, "n"), None),
    ("Epochs", lambda r: r.epochs_run(), None),
    ("Training time (s)", lambda r: metric_value(r.summary, "wall_time_s"), None),
)


_RESERVED = ("metric", "better", "best")


def _column_names(runs: Sequence[RunData]) -> list[str]:
    """Config ``name`` (or backbone); clashing names get the run folder appended, then a counter if needed."""
    base = [r.display_name for r in runs]
    counts = Counter(base)
    names = [
        f"{b} ({r.run_dir.name})" if (counts[b] > 1 or b in _RESERVED) and b != r.run_dir.name else b
        for b, r in zip(base, runs, strict=True)
    ]
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


# Shown only when some column has it: the accuracy among a dataset's own classes (cross-dataset evaluations).
OPTIONAL_ROWS: tuple[tuple[str, _Getter, str | None], ...] = (
    ("Accuracy (dataset's classes)", lambda r: metric_value(r.metrics, "accuracy_restricted"), "higher"),
)


def _load_evaluated(run_dirs: Sequence[str | Path], split: str) -> list[RunData]:
    if not run_dirs:
        raise ValueError("compare needs at least one run folder")
    runs = []
    for d in run_dirs:
        if Path(d).is_file():
            runs.append(load_evaluation(d))
            continue
        run = load_run(d, split)
        if run.metrics is None:
            raise FileNotFoundError(
                f"run {run.run_dir}: no evaluation metrics at {run.metrics_path} (evaluate it on split {split!r} first)"
            )
        runs.append(run)
    return runs


def load_evaluation(path: str | Path) -> RunData:
    """One ``<name>_metrics.json`` written by ``evaluate`` (its run is the folder above ``eval/``)."""
    path = Path(path)
    if not path.name.endswith("_metrics.json"):
        raise ValueError(
            f"{path}: not an evaluation file (<split>_metrics.json written by affectkit evaluate); "
            f"pass it or its run folder"
        )
    stem = path.name[: -len("_metrics.json")]
    run = load_run(path.parent.parent if path.parent.name == "eval" else path.parent, stem)
    if run.metrics_path.resolve() != path.resolve() or run.metrics is None:
        from affectkit.report.load import _read_json

        run.metrics = _read_json(path)
        if not isinstance(run.metrics, dict):
            raise ValueError(f"{path}: expected a JSON object")
    run.source = path  # type: ignore[attr-defined]
    return run


def evaluations_of(run_dirs: Sequence[str | Path]) -> list[Path]:
    """Every ``eval/*_metrics.json`` of each run folder (``compare --evals``): the run's own split first."""
    files: list[Path] = []
    for d in run_dirs:
        found = sorted(Path(d).glob("eval/*_metrics.json"), key=lambda p: (p.name != "test_metrics.json", p.name))
        if not found:
            raise FileNotFoundError(f"run {d}: no evaluations in {Path(d) / 'eval'} (run affectkit evaluate first)")
        files += found
    return files


def _dataset_label(run: RunData) -> str:
    """A column named by the evaluated dataset: its name, with the split unless it is "test"."""
    m = run.metrics or {}
    ds: dict[str, Any] = m["dataset"] if isinstance(m.get("dataset"), dict) else {}
    name = ds.get("name") or (Path(str(m["data"])).name if m.get("data") else run.run_dir.name)
    split = ds.get("split") or m.get("split") or run.split
    return name if split == "test" else f"{name} ({split})"


def _labels(runs: Sequence[RunData]) -> list[str]:
    """Model names; for evaluation files, dataset names (prefixed by the model when several models show)."""
    if not any(hasattr(r, "source") for r in runs):
        return _column_names(runs)
    models = {str((r.metrics or {}).get("checkpoint") or r.run_dir.resolve()) for r in runs}  # same model?
    labels = [_dataset_label(r) if len(models) == 1 else f"{r.display_name} · {_dataset_label(r)}" for r in runs]
    seen: Counter = Counter()
    out = []
    for name in labels:
        name = f"{name} (run)" if name in _RESERVED else name
        seen[name] += 1
        out.append(name if labels.count(name) == 1 else f"{name} #{seen[name]}")
    return out


def comparison_table(run_dirs: Sequence[str | Path], split: str = "test") -> list[dict[str, Any]]:
    """The comparison as rows, one dict per metric.

    Each dict has ``"metric"`` (row label), ``"better"`` ("higher", "lower" or None), one key per column
    (float, NaN when absent) and ``"best"`` (list of the best columns). Column order is the order of
    ``run_dirs``; read it from ``columns(...)`` or from the dict keys between "better" and "best".
    An entry of ``run_dirs`` is a run folder (its ``eval/<split>_metrics.json``) or an evaluation file itself
    (``RUN/eval/<name>_metrics.json``): evaluation columns are named by dataset, so one model on several
    datasets reads as one row per metric, one column per dataset.
    Raises FileNotFoundError naming the folder of a run without ``eval/<split>_metrics.json``.
    """
    runs = _load_evaluated(run_dirs, split)
    cols = _labels(runs)
    table = []
    for label, getter, better in METRIC_ROWS[:1] + OPTIONAL_ROWS + METRIC_ROWS[1:]:  # beside accuracy
        values = {c: float(getter(r)) for c, r in zip(cols, runs, strict=True)}
        if (label, getter, better) in OPTIONAL_ROWS and not any(math.isfinite(v) for v in values.values()):
            continue
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
    evals = any(Path(d).is_file() for d in run_dirs)
    note = (
        "Best per row in bold: higher is better, except RMSE (lower is better). "
        "n, epochs and training time are not ranked."
    )

    paths = {"md": out / "comparison.md", "html": out / "comparison.html", "csv": out / "comparison.csv"}
    context = {
        "title": "Evaluation comparison" if evals else f"Model comparison ({split})",
        "note": note,
        "header": header,
        "rows": rows,
        "best": bold,
        "folders": folders,
        "folders_header": ["Column", "Evaluation file"] if evals else ["Model", "Run folder"],
    }
    paths["md"].write_text(render("comparison.md", **context), encoding="utf-8")
    paths["html"].write_text(render("comparison.html", **context), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["metric", *cols, "better", "best"])
        for r in table:
            writer.writerow([r["metric"], *(_csv_number(r[c]) for c in cols), r["better"] or "", ";".join(r["best"])])
    return paths
