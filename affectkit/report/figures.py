"""The run report's figures, drawn from whatever a run folder holds; each one left out is noted with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectkit.labels import EXPRESSIONS
from affectkit.report import plots
from affectkit.report.load import RunData

# figure key -> PNG file name in RUN/report/
FIGURES = {
    "curves": "training_curves.png",
    "confusion": "confusion_matrix.png",
    "per_class": "per_class.png",
    "samples": "samples.png",
    "circumplex": "circumplex.png",
}


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


def _draw_confusion(run: RunData, y_true: np.ndarray | None, y_pred: np.ndarray | None, out_dir: Path) -> Path | None:
    """The confusion matrix of the metrics file, else of the predictions file; None (with a note) when neither
    has one or it cannot be drawn."""
    cm = (run.metrics or {}).get("confusion_matrix")
    if cm is None and y_true is not None and y_pred is not None:
        ok = (y_true >= 0) & (y_pred >= 0)
        k = len(EXPRESSIONS)
        cm = np.bincount(y_true[ok] * k + y_pred[ok], minlength=k * k).reshape(k, k)
        run.notes.append("Confusion matrix computed from the predictions file (absent from the metrics file).")
    if cm is not None:
        try:
            return plots.plot_confusion(cm, EXPRESSIONS, out_dir / FIGURES["confusion"])
        except ValueError as exc:
            run.notes.append(f"{run.metrics_path.name}: confusion matrix not drawn ({exc}).")
    elif run.metrics is not None:
        run.notes.append("No confusion matrix in the metrics file or predictions: confusion matrix left out.")
    return None


def make_figures(run: RunData, out_dir: Path) -> dict[str, Path]:
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
        run.notes.append(
            f"eval/{run.predictions_path.name}: y_true and y_prob differ in length "
            f"({len(y_true)} vs {len(y_pred)}); predicted labels are ignored."
        )
        y_pred = None
    confusion = _draw_confusion(run, y_true, y_pred, out_dir)
    if confusion is not None:
        figs["confusion"] = confusion
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
                run.notes.append(
                    f"eval/{run.predictions_path.name}: thumb_index does not fit the arrays, sample grid left out."
                )
            else:
                figs["samples"] = plots.plot_sample_grid(
                    thumbs,
                    y_true[tidx],
                    y_pred[tidx],
                    None if va_true is None else va_true[tidx],
                    None if va_pred is None else va_pred[tidx],
                    out_dir / FIGURES["samples"],
                )
        else:
            run.notes.append(
                "No thumbnails (thumbs / thumb_index / y_true / y_prob) in the predictions file: sample grid left out."
            )
        if va_pred is not None and np.isfinite(va_pred).all(axis=1).any():
            if va_true is not None and len(va_true) != len(va_pred):
                va_true = None
            yt = y_true if y_true is not None and len(y_true) == len(va_pred) else None
            figs["circumplex"] = plots.plot_circumplex(va_true, va_pred, out_dir / FIGURES["circumplex"], y_true=yt)
        else:
            run.notes.append("No valence/arousal predictions: circumplex left out.")
    return figs
