"""The valence/arousal circumplex figure: truth (hollow) and predictions (filled) in [-1, 1]², the unit circle,
quadrant labels, and arrows from truth to prediction for a subsample. Conventions as in ``plots``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affectkit.report.canvas import CLASS_COLORS, VAL_COLOR, new_figure, save, va_pairs

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
    vt = va_pairs(va_true, n)
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(rng.choice(n, max_points, replace=False))
    fig = new_figure(6.2, 6.0)
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
    return save(fig, out_png)


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
        ax.scatter(vp[has_p, 0], vp[has_p, 1], s=size, color=VAL_COLOR, alpha=alpha, label=label, zorder=2)
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
            color=CLASS_COLORS[c % 8] if known else "0.6",
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
