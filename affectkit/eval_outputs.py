"""What evaluation writes: the metrics JSON, the per-image predictions CSV (``predict``'s columns) and the
report's ``.npz`` (arrays and a sample grid that shows errors on purpose)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MAX_THUMBS = 32


def _by_class(candidates: np.ndarray, y_true: np.ndarray, limit: int, rng: np.random.Generator) -> list[int]:
    """Up to ``limit`` of ``candidates`` spread over their true classes: one of each class in turn."""
    order = rng.permutation(candidates)
    rank = np.zeros(len(order), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, c in enumerate(y_true[order].tolist()):
        rank[i] = seen[c] = seen.get(c, -1) + 1
    return order[np.argsort(rank, kind="stable")][:limit].tolist()


def pick_thumbs(y_true: np.ndarray, y_pred: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Indices for the sample grid (at most ``MAX_THUMBS``), errors first.

    With ``y_pred``, the model's errors (labelled samples predicted wrong) fill up to half the grid, spread over
    the true classes, so a 99 %-accurate model still shows what it gets wrong. The rest are correct (or
    unlabelled) samples, one of each class in turn so every expression shows; when those run out, more errors
    fill the grid.
    """
    rng = np.random.default_rng(seed)
    y_true = np.asarray(y_true)
    size = min(MAX_THUMBS, len(y_true))
    wrong = np.zeros(len(y_true), dtype=bool)
    if y_pred is not None:
        wrong = (y_true >= 0) & (np.asarray(y_pred) != y_true)
    errors = _by_class(np.flatnonzero(wrong), y_true, size // 2, rng)
    picked = _by_class(np.flatnonzero(~wrong), y_true, size - len(errors), rng)
    more = np.setdiff1d(np.flatnonzero(wrong), errors)
    errors.extend(rng.permutation(more)[: size - len(errors) - len(picked)].tolist())
    return np.asarray(sorted(errors) + sorted(picked), dtype=np.int64)


def write_outputs(
    out_json: Path, res: dict, ds, arrays: dict[str, np.ndarray], heads: dict[str, bool], image_size: int
) -> None:
    """The metrics JSON, the per-image CSV and the report's ``.npz`` (arrays and the sample grid)."""
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1))
    probs, va = arrays["probs"], arrays["va"]
    predicted = probs.argmax(1) if heads["expression"] else None
    thumb_index = pick_thumbs(arrays["expression"], predicted)
    thumbs = (
        np.stack([ds.samples_image(int(i)) for i in arrays["index"][thumb_index]])
        if len(thumb_index)
        else np.zeros((0, image_size, image_size, 3), np.uint8)
    )
    stem = out_json.name[: -len("_metrics.json")] if out_json.name.endswith("_metrics.json") else out_json.stem
    write_predictions_csv(out_json.with_name(f"{stem}_predictions.csv"), ds, arrays, heads)
    np.savez_compressed(
        out_json.with_name(f"{stem}_predictions.npz"),
        keys=np.array([ds.samples[int(i)].key for i in arrays["index"]]),
        y_true=arrays["expression"],
        y_prob=probs,
        valence_true=arrays["valence"],
        arousal_true=arrays["arousal"],
        thumbs=thumbs,
        # an untrained head's output is noise: NaN, so reports draw no circumplex and print no number
        valence_pred=va[:, 0] if heads["valence"] else np.full(len(va), np.nan),
        arousal_pred=va[:, 1] if heads["arousal"] else np.full(len(va), np.nan),
        thumb_index=thumb_index,
    )


def write_predictions_csv(path: Path, ds, arrays: dict[str, np.ndarray], heads: dict[str, bool]) -> Path:
    """One row per evaluated image: ``key``, ``source`` (the image path), ``label`` (true expression id, -1 if
    none), then ``predict``'s columns (``expression``, ``prob_<Name>``, ``valence``, ``arousal``; empty for heads
    the model was not trained for), so evaluation and prediction can be compared image by image."""
    import csv
    import os

    from affectkit.labels import EXPRESSIONS

    probs, va = arrays["probs"], arrays["va"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["key", "source", "label", "expression"] + [f"prob_{n}" for n in EXPRESSIONS] + ["valence", "arousal"]
        )
        for row, i in enumerate(arrays["index"]):
            s = ds.samples[int(i)]
            src = "" if isinstance(s.image, np.ndarray) else os.fspath(s.image)
            p = probs[row]
            w.writerow(
                [
                    s.key,
                    src,
                    int(arrays["expression"][row]),
                    EXPRESSIONS[int(np.argmax(p))] if heads["expression"] else "",
                ]
                + ([f"{v:.6f}" for v in p] if heads["expression"] else [""] * len(EXPRESSIONS))
                + [f"{va[row, 0]:.6f}" if heads["valence"] else "", f"{va[row, 1]:.6f}" if heads["arousal"] else ""]
            )
    return path
