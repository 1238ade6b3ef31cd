"""What a dataset holds: counts per class, valence/arousal statistics, exclusions, image sizes, splits.

``summarize`` returns a JSON-ready dict (what ``affectkit data summary --json`` prints); ``format_summary``
renders it as a plain-text table.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from affectkit.data.images import ImageError, check_image, scan_images
from affectkit.data.records import Records
from affectkit.labels import EXPRESSIONS

SIZE_SAMPLE = 500
VA_BINS = 20
MAX_LISTED = 50  # bad files named in the text summary; --json names them all


def _va_stats(values: list[float]) -> dict | None:
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64)
    counts, edges = np.histogram(a, bins=VA_BINS, range=(-1.0, 1.0))
    return {
        "n": int(a.size),
        "min": float(a.min()),
        "max": float(a.max()),
        "mean": float(a.mean()),
        "std": float(a.std()),
        "histogram": {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]},
    }


def _image_sizes(records_samples: list, limit: int = SIZE_SAMPLE) -> dict | None:
    paths = [s.image for s in records_samples]
    if not paths:
        return None
    idx = np.unique(np.linspace(0, len(paths) - 1, num=min(limit, len(paths))).round().astype(int))
    widths, heights = [], []
    for i in idx:
        image = paths[i]
        if isinstance(image, np.ndarray):
            h, w = image.shape[:2]
        else:
            try:
                w, h = check_image(os.fspath(image))
            except ImageError:
                continue
        widths.append(w)
        heights.append(h)
    if not widths:
        return None
    stats: dict[str, Any] = {}
    for name, values in (("width", widths), ("height", heights)):
        v = np.asarray(values)
        stats[name] = {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}
    stats["n_sampled"] = len(widths)
    return stats


def summarize(records: Records, scan: bool = True, strict: bool = False) -> dict:
    """Describe a read dataset. ``scan=True`` decodes every image and counts bad files in ``excluded``
    (``strict=True``: the first bad image raises ``ImageError`` instead).

    Keys: format, root, n_images (entries found, including excluded ones), n_usable, per_class (all 8
    expression names), valence, arousal (``{n, min, max, mean, std, histogram: {edges, counts}}`` or None),
    excluded (reason -> count), image_size (min/median/max width and height of up to 500 images spread
    evenly over the dataset), splits (split name -> usable count, or None when the dataset defines none),
    groups (``{kind, n, largest}``: what a group is, how many, the most images in one; None without groups),
    problems (``[file, reason]`` for every bad file met: the reader's, then the scan's).
    """
    samples = list(records.samples)
    excluded = Counter(records.excluded)
    problems = list(records.problems)
    if scan:
        samples, bad = scan_images(samples, strict=strict)
        for _, reason in bad:
            excluded[f"bad image: {reason.split(':', 1)[0]}"] += 1
        problems += bad
    n_found = getattr(records, "n_found", None)
    if n_found is None:
        n_found = len(records.samples)
    per_class = Counter(s.expression for s in samples if s.expression is not None)
    splits = Counter(s.split for s in samples if s.split is not None)
    return {
        "format": records.format,
        "root": str(records.root),
        "n_images": int(n_found),
        "n_usable": len(samples),
        "per_class": {name: int(per_class.get(i, 0)) for i, name in enumerate(EXPRESSIONS)},
        "valence": _va_stats([s.valence for s in samples if s.valence is not None]),
        "arousal": _va_stats([s.arousal for s in samples if s.arousal is not None]),
        "excluded": dict(sorted(excluded.items(), key=lambda kv: (-kv[1], kv[0]))),
        "image_size": _image_sizes(samples),
        "splits": {k: splits[k] for k in ("train", "val", "test") if k in splits} or None,
        "groups": _groups(samples, getattr(records, "group_kind", None)),
        "problems": [[str(file), reason] for file, reason in problems],
    }


def _groups(samples: list, kind: str | None) -> dict | None:
    sizes = Counter(s.group for s in samples if s.group is not None)
    if not sizes:
        return None
    return {"kind": kind or "group", "n": len(sizes), "largest": max(sizes.values())}


def format_summary(summary: dict) -> str:
    """A human-readable rendering of ``summarize``'s dict."""
    lines = [
        f"Dataset  {summary['root']}",
        f"Format   {summary['format']}",
        f"Images   {summary['n_images']} found, {summary['n_usable']} usable",
    ]
    if summary.get("splits"):
        lines.append("Splits   " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    groups = summary.get("groups")
    if groups:
        lines.append(
            f"Groups   {groups['n']} {groups['kind']}s (up to {groups['largest']} images each; "
            f"splits keep each {groups['kind']} in one part)"
        )
    total = sum(summary["per_class"].values())
    if total:
        lines += ["", f"{'Expression':<12}{'count':>8}{'share':>8}"]
        for name, count in summary["per_class"].items():
            lines.append(f"{name:<12}{count:>8}{count / total:>8.1%}")
    for task in ("valence", "arousal"):
        stats = summary.get(task)
        if stats:
            lines.append(
                f"{task.capitalize():<9}n {stats['n']}, mean {stats['mean']:+.3f}, std {stats['std']:.3f}, "
                f"range [{stats['min']:+.3f}, {stats['max']:+.3f}]"
            )
    size = summary.get("image_size")
    if size:
        w, h = size["width"], size["height"]
        lines.append(
            f"Size     width {w['min']}..{w['max']} (median {w['median']:g}), "
            f"height {h['min']}..{h['max']} (median {h['median']:g}), from {size['n_sampled']} images"
        )
    if summary.get("excluded"):
        lines += ["", f"{'Excluded':<40}{'count':>8}"]
        lines += [f"{reason:<40}{count:>8}" for reason, count in summary["excluded"].items()]
    problems = summary.get("problems") or []
    if problems:
        lines += ["", f"Bad files ({len(problems)})"]
        lines += [f"  {file}: {reason}" for file, reason in problems[:MAX_LISTED]]
        if len(problems) > MAX_LISTED:
            lines.append(f"  ... {len(problems) - MAX_LISTED} more (--json lists every one)")
    return "\n".join(lines)
