"""Report figures: training curves, confusion matrix, sample grid, valence/arousal circumplex, per-class bars.

Conventions: every function writes one PNG (dpi 110) and returns its path. Figures are built with
``matplotlib.figure.Figure`` (Agg canvas) rather than pyplot, so no display is needed and no global
pyplot state is touched. Missing values are NaN (or None / empty strings in metric rows) and are skipped;
a panel with nothing to show says "no data". Valence and arousal live in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from affectkit.report.canvas import (
    DPI,
    TRAIN_COLOR,
    VAL_COLOR,
    column,
    fmt_va,
    new_figure,
    save,
    to_float,
    va_pairs,
)
from affectkit.report.circumplex import plot_circumplex

__all__ = [
    "DPI",
    "plot_circumplex",
    "plot_confusion",
    "plot_per_class",
    "plot_sample_grid",
    "plot_training_curves",
    "to_float",
]

# (panel title, metric suffix): each panel draws train_<suffix> and val_<suffix> when present.
_CURVE_PANELS: tuple[tuple[str, str], ...] = (
    ("Total loss", "loss"),
    ("Expression loss", "loss_expression"),
    ("Valence loss", "loss_valence"),
    ("Arousal loss", "loss_arousal"),
    ("Accuracy", "accuracy"),
    ("F1 macro", "f1_macro"),
    ("Valence RMSE", "valence_rmse"),
    ("Valence CCC", "valence_ccc"),
    ("Arousal RMSE", "arousal_rmse"),
    ("Arousal CCC", "arousal_ccc"),
)


def plot_training_curves(rows: Sequence[Mapping[str, object]], out_png: str | Path) -> Path:
    """Grid of per-epoch panels, train (blue) vs validation (red).

    ``rows`` holds one dict per epoch as in ``metrics.csv`` (``epoch``, ``train_loss``, ``val_loss``,
    ``train_accuracy``, ...). Absent columns or NaN values are skipped; the x axis is ``epoch`` when present,
    else the row number (from 1). Panels: total loss, loss per task, accuracy, F1 macro, valence/arousal RMSE
    and CCC, plus validation score and learning rate when logged.
    """
    rows = list(rows)
    epochs = column(rows, "epoch")
    if not rows or np.isnan(epochs).all():
        epochs = np.arange(1, len(rows) + 1, dtype=float)
    panels = list(_CURVE_PANELS)
    extra = [("Validation score", "val_score"), ("Learning rate", "lr")]
    panels += [p for p in extra if rows and np.isfinite(column(rows, p[1])).any()]
    ncols = 4
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(3.6 * ncols, 2.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, suffix) in zip(axes, panels, strict=False):  # more axes than panels: the grid is full rows
        drawn = False
        series = (
            [(suffix, "", "k")]
            if suffix in ("val_score", "lr")
            else [(f"train_{suffix}", "train", TRAIN_COLOR), (f"val_{suffix}", "val", VAL_COLOR)]
        )
        for key, label, color in series:
            y = column(rows, key) if rows else np.array([])
            ok = np.isfinite(y) & np.isfinite(epochs)
            if not ok.any():
                continue
            ax.plot(epochs[ok], y[ok], marker="o", markersize=3, linewidth=1.5, color=color, label=label or None)
            drawn = True
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if suffix == "lr" and drawn:
            ax.set_yscale("log")
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
            ax.set_xticks([])
            ax.set_yticks([])
        elif ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7, loc="best")
        ax.set_xlabel("epoch", fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return save(fig, out_png)


def plot_confusion(
    cm: Sequence[Sequence[float]] | np.ndarray, names: Sequence[str], out_png: str | Path, normalize: bool = True
) -> Path:
    """Confusion matrix heat map, rows = truth, columns = prediction.

    With ``normalize`` the colour is the row-normalised share (recall along the diagonal) and each cell shows
    the count and the percentage of its row; rows without samples stay 0. Without it, colour = counts.
    """
    m = np.asarray(cm, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(names):
        raise ValueError(f"confusion matrix must be {len(names)}x{len(names)}, got shape {m.shape}")
    m = np.nan_to_num(m)
    totals = m.sum(axis=1, keepdims=True)
    share = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    shown = share if normalize else m
    k = len(names)
    fig = new_figure(1.0 + 0.85 * k, 0.6 + 0.8 * k)
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=8)
    thresh = 0.5 * (1 if normalize else max(shown.max(), 1))
    for i in range(k):
        for j in range(k):
            text = f"{int(round(m[i, j]))}\n{100 * share[i, j]:.0f}%" if normalize else f"{int(round(m[i, j]))}"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=7, color="white" if shown[i, j] > thresh else "black"
            )
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), [f"{n} ({int(t)})" for n, t in zip(names, totals[:, 0], strict=True)], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (support)")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""), fontsize=10)
    fig.tight_layout()
    return save(fig, out_png)


def plot_sample_grid(
    thumbs: np.ndarray,
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    va_true: np.ndarray | None,
    va_pred: np.ndarray | None,
    out_png: str | Path,
    ncols: int = 8,
    names: Sequence[str] | None = None,
) -> Path:
    """Grid of face thumbnails titled "T: Happy / P: Sad", green when right, red when wrong, grey if unlabelled;
    with errors among them, a title counts them (evaluation shows errors on purpose, see ``pick_thumbs``).

    ``thumbs`` is (K, H, W, 3) uint8 (or (K, H, W) grey); ``y_true``/``y_pred`` are (K,) expression ids with
    -1 = no label / no prediction. ``va_true``/``va_pred`` are (K, 2) arrays of (valence, arousal), NaN = none,
    shown under each image as "V 0.52→0.47  A 0.10→0.21" (true→predicted). ``names`` defaults to
    ``affectkit.labels.EXPRESSIONS``.
    """
    from affectkit.labels import EXPRESSIONS

    names = list(names or EXPRESSIONS)
    thumbs = np.asarray(thumbs)
    k = len(thumbs)
    y_true = np.asarray(y_true, dtype=int).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=int).reshape(-1)
    if len(y_true) != k or len(y_pred) != k:
        raise ValueError(f"{k} thumbnails but {len(y_true)} true and {len(y_pred)} predicted labels")
    vt, vp = va_pairs(va_true, k), va_pairs(va_pred, k)
    ncols = max(1, min(ncols, k)) if k else 1
    nrows = max(1, math.ceil(k / ncols))
    fig = new_figure(1.75 * ncols, 2.15 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()

    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= k:
            ax.set_visible(False)
            continue
        _draw_thumb(ax, thumbs[i], int(y_true[i]), int(y_pred[i]), vt[i], vp[i], names)
    if k == 0:
        axes[0].set_visible(True)
        axes[0].text(0.5, 0.5, "no samples", ha="center", va="center", color="gray")
    wrong = int(((y_true >= 0) & (y_pred >= 0) & (y_true != y_pred)).sum())
    if wrong:  # evaluation picks errors for up to half the grid: say so, the grid is not a random sample
        fig.suptitle(f"{wrong} of {k} shown are errors (red), chosen on purpose; the rest are correct", fontsize=9)
    fig.tight_layout(pad=0.4)
    return save(fig, out_png)


def _draw_thumb(ax, thumb: np.ndarray, t: int, p: int, vt: np.ndarray, vp: np.ndarray, names: Sequence[str]) -> None:
    """One grid cell: the face, "T: <true> / P: <predicted>" coloured by right/wrong, the (valence, arousal)
    pairs under it when known, and a frame of the title's colour."""

    def name(i: int) -> str:
        return names[i] if 0 <= i < len(names) else "?"

    ax.imshow(thumb, cmap="gray" if thumb.ndim == 2 else None, interpolation="bilinear")
    color = "gray" if t < 0 or p < 0 else ("green" if t == p else "red")
    ax.set_title(
        f"T: {name(t) if t >= 0 else '—'} / P: {name(p) if p >= 0 else '—'}",
        fontsize=7.5,
        color=color,
        fontweight="bold",
    )
    if np.isfinite(vt).any() or np.isfinite(vp).any():
        ax.set_xlabel(f"V {fmt_va(vt[0])}→{fmt_va(vp[0])}  A {fmt_va(vt[1])}→{fmt_va(vp[1])}", fontsize=6.5)
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2)


def plot_per_class(per_class: Mapping[str, Mapping[str, float]], out_png: str | Path) -> Path:
    """Grouped bars of precision, recall and F1 per expression; support is shown under each name.

    ``per_class`` maps class name -> {"precision", "recall", "f1", "support"}; NaN bars are left out.
    """
    names = list(per_class)
    keys = ("precision", "recall", "f1")
    colors = ("#4c72b0", "#55a868", "#c44e52")
    fig = new_figure(max(6.0, 0.95 * len(names) + 1.5), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    width = 0.27
    for j, (key, color) in enumerate(zip(keys, colors, strict=True)):
        vals = np.array([to_float(per_class[n].get(key)) for n in names], dtype=float)
        ok = np.isfinite(vals)
        ax.bar(x[ok] + (j - 1) * width, vals[ok], width, color=color, label=key)
    support = [to_float(per_class[n].get("support")) for n in names]
    ax.set_xticks(
        x, [f"{n}\n(n={int(s)})" if np.isfinite(s) else n for n, s in zip(names, support, strict=True)], fontsize=8
    )
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.15), frameon=False)
    ax.set_title("Per-class precision / recall / F1", fontsize=10, pad=22)
    if not names:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout()
    return save(fig, out_png)
