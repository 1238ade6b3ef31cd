"""The run report: ``RUN/report/index.html`` (self-contained) and ``report.md``, with the PNGs beside them.

What a run folder may hold is described in ``affectkit.report.load``; what is missing becomes a note in the
report. NaN / null metrics are shown as "n/a".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from affectkit.report.figures import FIGURES, make_figures
from affectkit.report.format import config_text, fmt, fmt_duration
from affectkit.report.load import RunData, load_run, metric_value
from affectkit.report.plots import to_float
from affectkit.report.render import png_data_uri, render

# names that lived here before the split stay importable from here
__all__ = [
    "write_report",
    "load_run",
    "RunData",
    "fmt",
    "fmt_duration",
    "metric_value",
    "png_data_uri",
    "FIGURES",
    "EXPRESSION_METRICS",
    "VA_METRICS",
    "CONFIG_HIGHLIGHTS",
]

# Headline metrics: (label, key in <split>_metrics.json).
EXPRESSION_METRICS: tuple[tuple[str, str], ...] = (
    ("Accuracy", "accuracy"),
    ("F1 macro", "f1_macro"),
    ("F1 weighted", "f1_weighted"),
    ("Cohen's Kappa", "kappa"),
    ("Krippendorff's Alpha", "krippendorff_alpha"),
    ("AUC-ROC", "auc_roc"),
    ("AUC-PR", "auc_pr"),
)
VA_METRICS: tuple[tuple[str, str], ...] = (("RMSE", "rmse"), ("CORR", "corr"), ("SAGR", "sagr"), ("CCC", "ccc"))
CONFIG_HIGHLIGHTS = ("name", "backbone", "data", "image_size", "epochs", "batch_size", "lr")
# Sections after the headline, in order: (figure key, heading); "per_class" also has a table.
SECTIONS = (
    ("curves", "Training curves"),
    ("confusion", "Confusion matrix"),
    ("per_class", "Per-class metrics"),
    ("per_dataset", "Validation per dataset (best epoch)"),
    ("samples", "Sample predictions"),
    ("circumplex", "Valence–arousal circumplex"),
)
Table = tuple[list[str], list[list[str]]]  # (header, rows of display strings)


def summary_items(run: RunData) -> list[list[str]]:
    """The "Run summary" table rows: [setting, value]."""
    items = [["Run folder", str(run.run_dir)], ["Split", run.split]]
    items += [[key, config_text(run.config[key])] for key in CONFIG_HIGHLIGHTS if key in run.config]
    epoch, score = run.best_epoch()
    if math.isfinite(epoch):
        items.append(["Best epoch (val_score)", f"{fmt(int(epoch))} ({fmt(score)})"])
    if math.isfinite(run.epochs_run()):
        items.append(["Epochs run", fmt(int(run.epochs_run()))])
    if "wall_time_s" in run.summary:
        items.append(["Training time", fmt_duration(run.summary["wall_time_s"])])
    if run.metrics is not None:
        items += dataset_items(run.metrics)
        if "n" in run.metrics:
            items.append(["Evaluated samples", fmt(run.metrics["n"])])
        if run.metrics.get("checkpoint"):
            items.append(["Checkpoint", str(run.metrics["checkpoint"])])
    return items


def dataset_items(metrics: dict[str, Any]) -> list[list[str]]:
    """The evaluated dataset, its classes and heads (cross-dataset evaluations), as summary rows."""
    ds = metrics.get("dataset")
    if not isinstance(ds, dict):
        return []
    items = [["Evaluated dataset", f"{ds.get('name')} ({ds.get('format') or 'format unknown'}): {ds.get('path')}"]]
    classes = ds.get("classes") or []
    absent = ds.get("absent_classes") or []
    if absent:
        how = "predictions restricted to them" if ds.get("restricted") else "predictions over all 8"
        items.append(
            [
                "Evaluated classes",
                f"{len(classes)}: {', '.join(classes)} (absent: {', '.join(absent)}; "
                f"{how}; F1 macro over these classes)",
            ]
        )
    heads = ds.get("heads") or {}
    lacking = [h for h, has in heads.items() if not has]
    if lacking:
        items.append(["Labels the dataset lacks", ", ".join(lacking) + " (no metrics for them)"])
    return items


def per_dataset_table(run: RunData) -> Table | None:
    """Validation metrics per dataset of a multi-dataset run, at the best epoch (metrics.csv ``val/<name>/...``)."""
    keys = sorted({k for r in run.rows for k in r if k.startswith("val/") and k.count("/") == 2})
    if not keys:
        return None
    epoch, _ = run.best_epoch()
    row = next((r for r in run.rows if to_float(r.get("epoch")) == epoch), run.rows[-1])
    names = list(dict.fromkeys(k.split("/")[1] for k in keys))
    metrics = list(dict.fromkeys(k.split("/")[2] for k in keys))
    return (["Dataset", *metrics], [[n] + [fmt(to_float(row.get(f"val/{n}/{m}"))) for m in metrics] for n in names])


def metric_tables(run: RunData) -> dict[str, Table]:
    """ "expression", "va" and (when the metrics have it) "per_class" tables; none without metrics."""
    m = run.metrics
    if m is None:
        return {}
    tables: dict[str, Table] = {
        "expression": (["Metric", "Value"], [[label, fmt(metric_value(m, key))] for label, key in EXPRESSION_METRICS]),
        "va": (
            ["Target"] + [label for label, _ in VA_METRICS],
            [
                [t.capitalize()] + [fmt(metric_value(m, t, key)) for _, key in VA_METRICS]
                for t in ("valence", "arousal")
            ],
        ),
    }
    for key, label in (
        ("accuracy_restricted", "Accuracy among the dataset's classes"),
        ("accuracy_unrestricted", "Accuracy over all 8 classes"),
    ):
        if key in m:
            tables["expression"][1].insert(1, [label, fmt(metric_value(m, key))])
    per_class = m.get("per_class")
    if isinstance(per_class, dict) and per_class:
        tables["per_class"] = (
            ["Expression", "Precision", "Recall", "F1", "Support"],
            [
                [
                    str(name),
                    fmt(to_float(v.get("precision"))),
                    fmt(to_float(v.get("recall"))),
                    fmt(to_float(v.get("f1"))),
                    fmt(v.get("support"), 0),
                ]
                for name, v in per_class.items()
                if isinstance(v, dict)
            ],
        )
    return tables


def collapse_warnings(run: RunData) -> list[str]:
    w = (run.metrics or {}).get("warnings") or []
    return [str(x) for x in (w if isinstance(w, list) else [w])]


def report_context(run: RunData, figs: dict[str, Path]) -> dict[str, Any]:
    """What both report templates show; figures by file name (Markdown) and as data URIs (HTML)."""
    tables = metric_tables(run)
    per_dataset = per_dataset_table(run)
    if per_dataset:
        tables["per_dataset"] = per_dataset
    sections = []
    for key, heading in SECTIONS:
        table = tables.get(key) if key in ("per_class", "per_dataset") else None
        if key in figs or table:
            fig = figs.get(key)
            sections.append(
                {
                    "heading": heading,
                    "table": table,
                    "figure": fig.name if fig else None,
                    "figure_uri": png_data_uri(fig) if fig else None,
                }
            )
    headline = {"expression": tables["expression"], "va": tables["va"]} if "expression" in tables else None
    return {
        "title": f"affectkit report: {run.display_name}",
        "split": run.split,
        "warnings": collapse_warnings(run),
        "summary": summary_items(run),
        "headline": headline,
        "notes": run.notes,
        "sections": sections,
    }


def write_report(run_dir: str | Path, split: str = "test") -> Path:
    """Write ``RUN/report/index.html`` and ``RUN/report/report.md`` (+ the PNGs) and return the HTML path.

    The HTML embeds every figure as a base64 data URI and carries its CSS inline, so it can be mailed or
    archived alone; the Markdown links the PNGs saved beside it. Missing inputs are listed under "Notes".
    """
    run = load_run(run_dir, split)
    out_dir = run.run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    context = report_context(run, make_figures(run, out_dir))
    html_path = out_dir / "index.html"
    html_path.write_text(render("report.html", **context), encoding="utf-8")
    (out_dir / "report.md").write_text(render("report.md", **context), encoding="utf-8")
    return html_path
