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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110
_TRAIN_COLOR = "#1f77b4"
_VAL_COLOR = "#d62728"
# one distinct colour per expression (tab10 without its grey, which marks unlabelled points)
_CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22")

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


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_png: str | Path) -> Path:
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


def _column(rows: Sequence[Mapping[str, object]], key: str) -> np.ndarray:
    return np.array([to_float(r.get(key)) for r in rows], dtype=float)


def plot_training_curves(rows: Sequence[Mapping[str, object]], out_png: str | Path) -> Path:
    """Grid of per-epoch panels, train (blue) vs validation (red).

    ``rows`` holds one dict per epoch as in ``metrics.csv`` (``epoch``, ``train_loss``, ``val_loss``,
    ``train_accuracy``, ...). Absent columns or NaN values are skipped; the x axis is ``epoch`` when present,
    else the row number (from 1). Panels: total loss, loss per task, accuracy, F1 macro, valence/arousal RMSE
    and CCC, plus validation score and learning rate when logged.
    """
    rows = list(rows)
    epochs = _column(rows, "epoch")
    if not rows or np.isnan(epochs).all():
        epochs = np.arange(1, len(rows) + 1, dtype=float)
    panels = list(_CURVE_PANELS)
    extra = [("Validation score", "val_score"), ("Learning rate", "lr")]
    panels += [p for p in extra if rows and np.isfinite(_column(rows, p[1])).any()]
    ncols = 4
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(3.6 * ncols, 2.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, suffix) in zip(axes, panels, strict=False):  # more axes than panels: the grid is full rows
        drawn = False
        series = (
            [(suffix, "", "k")]
            if suffix in ("val_score", "lr")
            else [(f"train_{suffix}", "train", _TRAIN_COLOR), (f"val_{suffix}", "val", _VAL_COLOR)]
        )
        for key, label, color in series:
            y = _column(rows, key) if rows else np.array([])
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
    return _save(fig, out_png)


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
    fig = _new_figure(1.0 + 0.85 * k, 0.6 + 0.8 * k)
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
    return _save(fig, out_png)


def _fmt_va(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.2f}"


def _va_pairs(va: np.ndarray | Sequence | None, n: int) -> np.ndarray:
    """(n, 2) float array of (valence, arousal); None gives all-NaN."""
    if va is None:
        return np.full((n, 2), np.nan)
    a = np.asarray(va, dtype=float)
    if a.shape != (n, 2):
        raise ValueError(f"valence/arousal must have shape ({n}, 2), got {a.shape}")
    return a


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
    vt, vp = _va_pairs(va_true, k), _va_pairs(va_pred, k)
    ncols = max(1, min(ncols, k)) if k else 1
    nrows = max(1, math.ceil(k / ncols))
    fig = _new_figure(1.75 * ncols, 2.15 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()

    def name(i: int) -> str:
        return names[i] if 0 <= i < len(names) else "?"

    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= k:
            ax.set_visible(False)
            continue
        ax.imshow(thumbs[i], cmap="gray" if thumbs[i].ndim == 2 else None, interpolation="bilinear")
        t, p = int(y_true[i]), int(y_pred[i])
        color = "gray" if t < 0 or p < 0 else ("green" if t == p else "red")
        ax.set_title(
            f"T: {name(t) if t >= 0 else '—'} / P: {name(p) if p >= 0 else '—'}",
            fontsize=7.5,
            color=color,
            fontweight="bold",
        )
        if np.isfinite(vt[i]).any() or np.isfinite(vp[i]).any():
            ax.set_xlabel(
                f"V {_fmt_va(vt[i, 0])}→{_fmt_va(vp[i, 0])}  A {_fmt_va(vt[i, 1])}→{_fmt_va(vp[i, 1])}", fontsize=6.5
            )
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(2)
    if k == 0:
        axes[0].set_visible(True)
        axes[0].text(0.5, 0.5, "no samples", ha="center", va="center", color="gray")
    wrong = int(((y_true >= 0) & (y_pred >= 0) & (y_true != y_pred)).sum())
    if wrong:  # evaluation picks errors for up to half the grid: say so, the grid is not a random sample
        fig.suptitle(f"{wrong} of {k} shown are errors (red), chosen on purpose; the rest are correct", fontsize=9)
    fig.tight_layout(pad=0.4)
    return _save(fig, out_png)


_QUADRANTS = (
    (0.72, 0.9, "excited / happy"),
    (-0.72, 0.9, "angry / afraid"),
    (-0.72, -0.9, "sad / bored"),
    (0.72, -0.9, "calm / content"),
)


def plot_circumplex(
    va_true: np.ndarray | None,
    va_pred: np.ndarray,
    out_png: str | Path,
    y_true: Sequence[int] | np.ndarray | None = None,
    max_lines: int = 60,
    max_points: int = 2000,
    seed: int = 0,
) -> Path:
    """Valence (x) vs arousal (y) scatter in [-1, 1]²: truth (hollow) and predictions (filled).

    ``va_true``/``va_pred`` are (N, 2) arrays of (valence, arousal), NaN = none. Draws the unit circle,
    quadrant labels, and thin arrows from truth to prediction for a random subsample of ``max_lines`` pairs.
    With ``y_true`` (expression ids, -1 = none) predictions are coloured by the true expression.
    At most ``max_points`` points are drawn (random subsample, fixed ``seed``) to keep the file small.
    """
    vp = np.asarray(va_pred, dtype=float)
    if vp.ndim != 2 or vp.shape[1] != 2:
        raise ValueError(f"va_pred must have shape (N, 2), got {vp.shape}")
    n = len(vp)
    vt = _va_pairs(va_true, n)
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(rng.choice(n, max_points, replace=False))
    fig = _new_figure(6.2, 6.0)
    ax = fig.add_subplot()
    _draw_circumplex_frame(ax)
    has_t = idx[np.isfinite(vt[idx]).all(axis=1)]
    has_p = idx[np.isfinite(vp[idx]).all(axis=1)]
    alpha, size = (0.3, 6) if len(idx) > 400 else (0.8, 14)
    ax.scatter(
        vt[has_t, 0],
        vt[has_t, 1],
        s=size + 4,
        facecolors="none",
        edgecolors="0.35",
        linewidths=0.6,
        alpha=alpha,
        label=f"truth (n={len(has_t)})",
        zorder=2,
    )
    _scatter_predictions(ax, vp, has_p, y_true, n, alpha, size)
    # truth->prediction lines on top of the cloud, so the error direction stays visible on dense plots
    _draw_error_arrows(ax, vt, vp, np.intersect1d(has_t, has_p), max_lines, rng)
    if not len(has_p) and not len(has_t):
        ax.text(0, 0.2, "no valence/arousal data", ha="center", color="gray")
    ax.set_title("Valence–arousal circumplex" + (f" ({len(idx)} of {n} shown)" if len(idx) < n else ""), fontsize=10)
    if ax.get_legend_handles_labels()[1]:
        legend = ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        for handle in legend.legend_handles:  # faint points in the plot, readable swatches in the legend
            if handle is not None:
                handle.set_alpha(1)
    fig.tight_layout()
    return _save(fig, out_png)


def _draw_circumplex_frame(ax) -> None:
    """The unit circle, the axes through 0, the quadrant labels and the [-1, 1]² limits."""
    theta = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(theta), np.sin(theta), color="0.6", linewidth=1)
    ax.axhline(0, color="0.75", linewidth=0.8)
    ax.axvline(0, color="0.75", linewidth=0.8)
    box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5}
    for x, y, label in _QUADRANTS:
        ax.text(x, y, label, ha="center", va="center", fontsize=8, color="0.25", style="italic", zorder=4, bbox=box)
    ax.set_xlim(-1.08, 1.08)
    ax.set_ylim(-1.08, 1.08)
    ax.set_aspect("equal")
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")


def _scatter_predictions(ax, vp: np.ndarray, has_p: np.ndarray, y_true, n: int, alpha: float, size: float) -> None:
    """The predicted points: one colour per true expression with ``y_true``, else one colour."""
    from affectkit.labels import EXPRESSIONS

    if y_true is None or not len(has_p):
        label = f"prediction (n={len(has_p)})"
        ax.scatter(vp[has_p, 0], vp[has_p, 1], s=size, color=_VAL_COLOR, alpha=alpha, label=label, zorder=2)
        return
    yt = np.asarray(y_true, dtype=int).reshape(-1)
    if len(yt) != n:
        raise ValueError(f"y_true has {len(yt)} labels for {n} predictions")
    for c in sorted(set(yt[has_p].tolist())):
        sel = has_p[yt[has_p] == c]
        known = 0 <= c < len(EXPRESSIONS)
        ax.scatter(
            vp[sel, 0],
            vp[sel, 1],
            s=size,
            color=_CLASS_COLORS[c % 8] if known else "0.6",
            alpha=alpha,
            label=f"pred | true {EXPRESSIONS[c]}" if known else "pred | unlabelled",
            zorder=2,
        )


def _draw_error_arrows(ax, vt: np.ndarray, vp: np.ndarray, both: np.ndarray, max_lines: int, rng) -> None:
    """Arrows from truth to prediction for up to ``max_lines`` of the samples ``both`` (having both)."""
    if not len(both):
        return
    lines = rng.choice(both, min(max_lines, len(both)), replace=False)
    style = {
        "arrowstyle": "-|>",
        "color": "k",
        "lw": 0.7,
        "alpha": 0.75,
        "mutation_scale": 6,
        "shrinkA": 0,
        "shrinkB": 0,
    }
    for i in lines:
        ax.annotate("", xy=(vp[i, 0], vp[i, 1]), xytext=(vt[i, 0], vt[i, 1]), zorder=3, arrowprops=style)
    ax.plot([], [], color="k", lw=0.7, label=f"truth → prediction ({len(lines)} shown)")


def plot_per_class(per_class: Mapping[str, Mapping[str, float]], out_png: str | Path) -> Path:
    """Grouped bars of precision, recall and F1 per expression; support is shown under each name.

    ``per_class`` maps class name -> {"precision", "recall", "f1", "support"}; NaN bars are left out.
    """
    names = list(per_class)
    keys = ("precision", "recall", "f1")
    colors = ("#4c72b0", "#55a868", "#c44e52")
    fig = _new_figure(max(6.0, 0.95 * len(names) + 1.5), 3.6)
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
    return _save(fig, out_png)
