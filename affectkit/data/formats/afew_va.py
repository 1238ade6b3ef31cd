"""AFEW-VA: 600 film clips as frame folders, valence/arousal and 68 landmarks for every frame.

Layout: ``001/00000.png ...`` and ``001/001.json`` per clip. The JSON holds
``{"frames": {"00000": {"valence": v, "arousal": a, "landmarks": [[x, y] * 68]}, ...}}`` (plus ``actor`` and
``video_id``); valence and arousal are integers on -10..10, scaled here to [-1, 1]. The face is cropped from the
frame by a square around the landmarks (``_common.box_around``), which are kept in ``Sample.landmarks``.
Source: Kossaifi et al., "AFEW-VA database for valence and arousal estimation in-the-wild", IVC 2017, and the
release's clip JSON files (public loaders read ``data["frames"][frame]["valence"|"arousal"]``).

No expression labels (``expression`` is None: only the valence/arousal heads learn from it). Groups: the clip
(``001``); clips of one film or actor are not linked by the release, so grouping is per clip. No published
splits. A clip whose JSON is unreadable is skipped; a frame with values outside -10..10, without usable
landmarks or without its image is skipped, each with a warning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from affectkit.data.formats._common import (
    DEFAULT_OPTIONS,
    Collector,
    ReadOptions,
    ReadRecords,
    box_around,
    image_names,
    scandir_names,
)

NAME = "afew_va"
DESCRIPTION = "clip folders 001/, 002/, ... each with frames 00000.png ... and 001.json (AFEW-VA)"
VA_SCALE = 10.0


def _clips(root: Path) -> list[str]:
    return sorted(
        n for n, is_dir in scandir_names(root).items() if is_dir and n.isdigit() and (root / n / f"{n}.json").is_file()
    )


def looks_like(root: Path) -> bool:
    return bool(_clips(root))


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read AFEW-VA at ``root``; see the module docstring."""
    collector = Collector(NAME, root, options.strict, group_kind="clip")
    for clip in _clips(root):
        _read_clip(collector, root, clip)
    return collector.records()


def _read_clip(collector: Collector, root: Path, clip: str) -> None:
    annotation = root / clip / f"{clip}.json"
    text = collector.read_text(annotation)
    if text is None:
        return
    try:
        frames = json.loads(text)["frames"]
        if not isinstance(frames, dict):
            raise TypeError("'frames' is not an object")
    except (ValueError, KeyError, TypeError) as err:
        collector.n_found += 1
        collector.problem(
            annotation, f"unreadable annotation ({err.__class__.__name__}: {err})", "unreadable annotation"
        )
        return
    files = {name.rsplit(".", 1)[0]: name for name in image_names(root / clip)}
    for frame in sorted(frames):
        collector.n_found += 1
        source = f"{annotation} (frame {frame})"
        entry = frames[frame] if isinstance(frames[frame], dict) else {}
        values = [_scaled(entry.get(name)) for name in ("valence", "arousal")]
        if any(v is None for v in values):
            collector.problem(
                source,
                f"valence/arousal {entry.get('valence')!r}/{entry.get('arousal')!r} not numbers in -10..10",
                "bad annotation",
            )
            continue
        landmarks = _landmarks(entry.get("landmarks"))
        box = box_around(landmarks) if landmarks is not None else None
        if box is None:
            collector.problem(source, "no usable landmarks to crop the face by", "bad annotation")
            continue
        name = files.get(frame)
        if name is None:
            collector.problem(root / clip / f"{frame}.png", f"annotated in {clip}.json but missing", "missing image")
            continue
        collector.add(
            str(root / clip / name),
            f"{clip}/{name}",
            valence=values[0],
            arousal=values[1],
            landmarks=landmarks,
            box=box,
            group=clip,
            parsed=True,
        )


def _scaled(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or abs(value) > VA_SCALE:
        return None
    return float(value) / VA_SCALE


def _landmarks(value: object) -> np.ndarray | None:
    try:
        points = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2 or not np.isfinite(points).all():
        return None
    return points
