"""Read a run folder and write its report: ``RUN/report/index.html`` (self-contained) and ``report.md``.

A run folder holds (each file optional; what is missing becomes a note in the report):
``config.yaml``, ``metrics.csv`` or ``metrics.json`` (one row per epoch), ``train_summary.json``,
``eval/<split>_metrics.json`` and ``eval/<split>_predictions.npz``. Unreadable (corrupt) files raise
``ValueError`` naming the file. NaN / null metrics are shown as "n/a".
"""
from __future__ import annotations

import base64
import csv
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectkit.labels import EXPRESSIONS
from affectkit.report import plots
from affectkit.report.plots import to_float

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
FIGURES = {
    "curves": "training_curves.png",
    "confusion": "confusion_matrix.png",
    "per_class": "per_class.png",
    "samples": "samples.png",
    "circumplex": "circumplex.png",
}


@dataclass
class RunData:
    """Everything read from one run folder; absent parts are empty and explained in ``notes``."""

    run_dir: Path
    split: str
    config: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "eval" / f"{self.split}_metrics.json"

    @property
    def predictions_path(self) -> Path:
        return self.run_dir / "eval" / f"{self.split}_predictions.npz"

    @property
    def display_name(self) -> str:
        """Config ``name``, else ``backbone``, else the folder name."""
        for key in ("name", "backbone"):
            value = self.config.get(key)
            if value not in (None, ""):
                return str(value)
        return self.run_dir.name

    def best_epoch(self) -> tuple[float, float]:
        """(best epoch, its val_score): from ``train_summary.json`` when given, else the max ``val_score`` row."""
        epoch, score = to_float(self.summary.get("best_epoch")), to_float(self.summary.get("best_score"))
        if math.isfinite(epoch):
            return epoch, score
        scores = np.array([to_float(r.get("val_score")) for r in self.rows], dtype=float)
        if not np.isfinite(scores).any():
            return math.nan, math.nan
        i = int(np.nanargmax(scores))
        ep = to_float(self.rows[i].get("epoch"))
        return (ep if math.isfinite(ep) else float(i + 1)), float(scores[i])

    def epochs_run(self) -> float:
        value = to_float(self.summary.get("epochs_run"))
        return value if math.isfinite(value) else (float(len(self.rows)) if self.rows else math.nan)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _read_rows(run_dir: Path, notes: list[str]) -> list[dict[str, Any]]:
    csv_path, json_path = run_dir / "metrics.csv", run_dir / "metrics.json"
    if csv_path.is_file():
        try:
            with csv_path.open(newline="") as fh:
                rows = [dict(r) for r in csv.DictReader(fh)]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"{csv_path}: not a readable CSV ({exc})") from exc
    elif json_path.is_file():
        rows = _read_json(json_path)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{json_path}: expected a list of per-epoch objects")
    else:
        notes.append("No metrics.csv / metrics.json: training curves are left out.")
        return []
    if not rows:
        notes.append("The per-epoch metrics file has no rows: training curves are left out.")
    return rows


def _read_predictions(path: Path, notes: list[str]) -> dict[str, np.ndarray]:
    if not path.is_file():
        notes.append(f"No eval/{path.name}: sample grid and circumplex are left out.")
        return {}
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    out[key] = npz[key]
                except ValueError:  # object arrays need pickle, which we never allow
                    notes.append(f"eval/{path.name}: array {key!r} is a pickled object array, skipped.")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    return out


def load_run(run_dir: str | Path, split: str = "test") -> RunData:
    """Read every report input of ``run_dir`` that exists; see the module docstring for the layout."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    run = RunData(run_dir=run_dir, split=split)
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        import yaml

        try:
            cfg = yaml.safe_load(cfg_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{cfg_path}: not valid YAML ({exc})") from exc
        if not isinstance(cfg, dict):
            raise ValueError(f"{cfg_path}: expected a mapping at the top level, got {type(cfg).__name__}")
        run.config = cfg
    else:
        run.notes.append("No config.yaml: run settings are unknown.")
    run.rows = _read_rows(run_dir, run.notes)
    summary_path = run_dir / "train_summary.json"
    if summary_path.is_file():
        summary = _read_json(summary_path)
        if not isinstance(summary, dict):
            raise ValueError(f"{summary_path}: expected a JSON object")
        run.summary = summary
    if run.metrics_path.is_file():
        metrics = _read_json(run.metrics_path)
        if not isinstance(metrics, dict):
            raise ValueError(f"{run.metrics_path}: expected a JSON object")
        run.metrics = metrics
    else:
        run.notes.append(f"No eval/{run.metrics_path.name}: evaluation metrics are missing (run evaluation first).")
    run.predictions = _read_predictions(run.predictions_path, run.notes)
    return run


def fmt(value: Any, digits: int = 4) -> str:
    """A number for display: NaN/None -> "n/a", integers without decimals, floats with ``digits`` decimals."""
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    x = to_float(value)
    if not math.isfinite(x):
        return "n/a" if isinstance(value, (float, np.floating)) or str(value).strip().lower() in (
            "", "nan", "none", "null", "inf", "-inf") else str(value)
    return f"{x:.{digits}f}"


def fmt_duration(seconds: Any) -> str:
    s = to_float(seconds)
    if not math.isfinite(s):
        return "n/a"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else (f"{m}m {sec:02d}s" if m else f"{sec}s")


def metric_value(metrics: dict[str, Any] | None, *keys: str) -> float:
    """Nested metric lookup (e.g. ``"valence", "rmse"``) as float; absent or null gives NaN."""
    node: Any = metrics
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return math.nan
        node = node[key]
    return to_float(node)


def _config_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_config_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_config_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------- figures

def _predicted_labels(pred: dict[str, np.ndarray]) -> np.ndarray | None:
    prob = pred.get("y_prob")
    if prob is None or prob.ndim != 2:
        return None
    prob = np.asarray(prob, dtype=float)
    out = np.full(len(prob), -1, dtype=int)
    ok = np.isfinite(prob).all(axis=1)
    out[ok] = prob[ok].argmax(axis=1)
    return out


def _true_labels(pred: dict[str, np.ndarray]) -> np.ndarray | None:
    """``y_true`` as int with -1 = no label (a float array may carry NaN for missing labels)."""
    y = pred.get("y_true")
    if y is None:
        return None
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind == "f":
        y = np.where(np.isfinite(y), y, -1)
    return y.astype(int)


def _va(pred: dict[str, np.ndarray], which: str) -> np.ndarray | None:
    v, a = pred.get(f"valence_{which}"), pred.get(f"arousal_{which}")
    if v is None or a is None or len(v) != len(a):
        return None
    return np.stack([np.asarray(v, dtype=float), np.asarray(a, dtype=float)], axis=1)


def _make_figures(run: RunData, out_dir: Path) -> dict[str, Path]:
    """Draw every figure the inputs allow; note each one left out and why."""
    for name in FIGURES.values():  # a figure that cannot be drawn now must not survive from an older report
        (out_dir / name).unlink(missing_ok=True)
    figs: dict[str, Path] = {}
    if run.rows:
        figs["curves"] = plots.plot_training_curves(run.rows, out_dir / FIGURES["curves"])
    pred, metrics = run.predictions, run.metrics or {}
    y_true = _true_labels(pred)
    y_pred = _predicted_labels(pred)
    if y_true is not None and y_pred is not None and len(y_true) != len(y_pred):
        run.notes.append(f"eval/{run.predictions_path.name}: y_true and y_prob differ in length "
                         f"({len(y_true)} vs {len(y_pred)}); predicted labels are ignored.")
        y_pred = None
    cm = metrics.get("confusion_matrix")
    if cm is None and y_true is not None and y_pred is not None:
        ok = (y_true >= 0) & (y_pred >= 0)
        k = len(EXPRESSIONS)
        cm = np.bincount(y_true[ok] * k + y_pred[ok], minlength=k * k).reshape(k, k)
        run.notes.append("Confusion matrix computed from the predictions file (absent from the metrics file).")
    if cm is not None:
        try:
            figs["confusion"] = plots.plot_confusion(cm, EXPRESSIONS, out_dir / FIGURES["confusion"])
        except ValueError as exc:
            run.notes.append(f"{run.metrics_path.name}: confusion matrix not drawn ({exc}).")
    elif run.metrics is not None:
        run.notes.append("No confusion matrix in the metrics file or predictions: confusion matrix left out.")
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        figs["per_class"] = plots.plot_per_class(per_class, out_dir / FIGURES["per_class"])

    if pred:
        va_true, va_pred = _va(pred, "true"), _va(pred, "pred")
        thumbs, tidx = pred.get("thumbs"), pred.get("thumb_index")
        if thumbs is not None and tidx is not None and len(thumbs) and y_true is not None and y_pred is not None:
            tidx = np.asarray(tidx, dtype=int)
            n = len(y_true)
            if len(tidx) != len(thumbs) or (len(tidx) and (tidx.min() < 0 or tidx.max() >= n)):
                run.notes.append(f"eval/{run.predictions_path.name}: thumb_index does not fit the arrays, "
                                 "sample grid left out.")
            else:
                figs["samples"] = plots.plot_sample_grid(
                    thumbs, y_true[tidx], y_pred[tidx],
                    None if va_true is None else va_true[tidx], None if va_pred is None else va_pred[tidx],
                    out_dir / FIGURES["samples"])
        else:
            run.notes.append("No thumbnails (thumbs / thumb_index / y_true / y_prob) in the predictions file: "
                             "sample grid left out.")
        if va_pred is not None and np.isfinite(va_pred).all(axis=1).any():
            if va_true is not None and len(va_true) != len(va_pred):
                va_true = None
            yt = y_true if y_true is not None and len(y_true) == len(va_pred) else None
            figs["circumplex"] = plots.plot_circumplex(va_true, va_pred, out_dir / FIGURES["circumplex"], y_true=yt)
        else:
            run.notes.append("No valence/arousal predictions: circumplex left out.")
    return figs


# ---------------------------------------------------------------------------------------------- content

def _summary_items(run: RunData) -> list[tuple[str, str]]:
    items = [("Run folder", str(run.run_dir)), ("Split", run.split)]
    for key in CONFIG_HIGHLIGHTS:
        if key in run.config:
            items.append((key, _config_text(run.config[key])))
    epoch, score = run.best_epoch()
    if math.isfinite(epoch):
        items.append(("Best epoch (val_score)", f"{fmt(int(epoch))} ({fmt(score)})"))
    if math.isfinite(run.epochs_run()):
        items.append(("Epochs run", fmt(int(run.epochs_run()))))
    if "wall_time_s" in run.summary:
        items.append(("Training time", fmt_duration(run.summary["wall_time_s"])))
    if run.metrics is not None:
        if "n" in run.metrics:
            items.append(("Evaluated samples", fmt(run.metrics["n"])))
        if run.metrics.get("checkpoint"):
            items.append(("Checkpoint", str(run.metrics["checkpoint"])))
    return items


def _tables(run: RunData) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Report tables as (header, rows of display strings)."""
    m = run.metrics
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    if m is None:
        return tables
    tables["expression"] = (["Metric", "Value"],
                            [[label, fmt(metric_value(m, key))] for label, key in EXPRESSION_METRICS])
    tables["va"] = (["Target"] + [label for label, _ in VA_METRICS],
                    [[t.capitalize()] + [fmt(metric_value(m, t, key)) for _, key in VA_METRICS]
                     for t in ("valence", "arousal")])
    per_class = m.get("per_class")
    if isinstance(per_class, dict) and per_class:
        tables["per_class"] = (["Expression", "Precision", "Recall", "F1", "Support"],
                               [[str(name), fmt(to_float(v.get("precision"))), fmt(to_float(v.get("recall"))),
                                 fmt(to_float(v.get("f1"))), fmt(v.get("support"), 0)]
                                for name, v in per_class.items() if isinstance(v, dict)])
    return tables


def _warnings(run: RunData) -> list[str]:
    w = (run.metrics or {}).get("warnings") or []
    return [str(x) for x in (w if isinstance(w, list) else [w])]


_SECTIONS = (
    ("curves", "Training curves"),
    ("confusion", "Confusion matrix"),
    ("per_class", "Per-class metrics"),
    ("samples", "Sample predictions"),
    ("circumplex", "Valence–arousal circumplex"),
)

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.warn{background:#fde8e8;border:2px solid #c0392b;color:#7b1d12;padding:.8em 1.2em;border-radius:6px;
margin:1em 0}.warn h2{border:none;color:#c0392b;margin:0 0 .3em 0}
.notes{background:#f5f5f5;border-left:4px solid #999;padding:.5em 1em;color:#555}
img{max-width:100%;height:auto;border:1px solid #eee}.grid{display:flex;gap:2em;flex-wrap:wrap}
b.best{color:#0a6b2a}
"""


def _html_table(header: list[str], rows: list[list[str]], bold: set[tuple[int, int]] | None = None) -> str:
    bold = bold or set()
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            text = html.escape(cell)
            cells.append(f"<td><b class=\"best\">{text}</b></td>" if (i, j) in bold else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]], bold: set[tuple[int, int]] | None = None) -> str:
    bold = bold or set()
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for i, row in enumerate(rows):
        cells = [f"**{_md_cell(c)}**" if (i, j) in bold else _md_cell(c) for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _render_html(run: RunData, figs: dict[str, Path], title: str) -> str:
    tables, warnings = _tables(run), _warnings(run)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    if warnings:
        parts.append("<div class=\"warn\"><h2>&#9888; Collapse warnings</h2><ul>"
                     + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul></div>")
    parts.append("<h2>Run summary</h2>")
    parts.append(_html_table(["Setting", "Value"], [[k, v] for k, v in _summary_items(run)]))
    if "expression" in tables:
        parts.append(f"<h2>Headline metrics ({html.escape(run.split)})</h2><div class=\"grid\"><div>"
                     "<h3>Expression</h3>" + _html_table(*tables["expression"]) + "</div><div>"
                     "<h3>Valence / arousal</h3>" + _html_table(*tables["va"]) + "</div></div>")
    if run.notes:
        parts.append("<div class=\"notes\"><b>Notes</b><ul>"
                     + "".join(f"<li>{html.escape(n)}</li>" for n in run.notes) + "</ul></div>")
    for key, heading in _SECTIONS:
        if key not in figs and not (key == "per_class" and "per_class" in tables):
            continue
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if key == "per_class" and "per_class" in tables:
            parts.append(_html_table(*tables["per_class"]))
        if key in figs:
            parts.append(f"<img alt=\"{html.escape(heading)}\" src=\"{png_data_uri(figs[key])}\">")
    parts.append("</body></html>")
    return "\n".join(parts)


def _render_md(run: RunData, figs: dict[str, Path], title: str) -> str:
    tables, warnings = _tables(run), _warnings(run)
    parts = [f"# {title}", ""]
    if warnings:
        parts += ["> **⚠ Collapse warnings**", ">"] + [f"> - {w}" for w in warnings] + [""]
    parts += ["## Run summary", "", _md_table(["Setting", "Value"], [[k, v] for k, v in _summary_items(run)]), ""]
    if "expression" in tables:
        parts += [f"## Headline metrics ({run.split})", "", "### Expression", "", _md_table(*tables["expression"]),
                  "", "### Valence / arousal", "", _md_table(*tables["va"]), ""]
    if run.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in run.notes] + [""]
    for key, heading in _SECTIONS:
        if key not in figs and not (key == "per_class" and "per_class" in tables):
            continue
        parts += [f"## {heading}", ""]
        if key == "per_class" and "per_class" in tables:
            parts += [_md_table(*tables["per_class"]), ""]
        if key in figs:
            parts += [f"![{heading}]({figs[key].name})", ""]
    return "\n".join(parts)


def write_report(run_dir: str | Path, split: str = "test") -> Path:
    """Write ``RUN/report/index.html`` and ``RUN/report/report.md`` (+ the PNGs) and return the HTML path.

    The HTML embeds every figure as a base64 data URI and carries its CSS inline, so it can be mailed or
    archived alone; the Markdown links the PNGs saved beside it. Missing inputs are listed under "Notes".
    """
    run = load_run(run_dir, split)
    out_dir = run.run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = _make_figures(run, out_dir)
    title = f"affectkit report: {run.display_name}"
    html_path = out_dir / "index.html"
    html_path.write_text(_render_html(run, figs, title), encoding="utf-8")
    (out_dir / "report.md").write_text(_render_md(run, figs, title), encoding="utf-8")
    return html_path
