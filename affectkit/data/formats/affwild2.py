"""Aff-Wild2 as distributed for the ABAW challenges: cropped-aligned frames plus per-video annotation files.

Layout: ``cropped_aligned/<video>/00001.jpg ...`` and, at the root or one folder down (e.g. ``annotations/``),
``VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>.txt`` (header ``valence,arousal``, then one line
per frame; -5 marks a frame without a value) and ``EXPR_Classification_Challenge/{Train_Set,Validation_Set}/
<video>.txt`` (header ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other``, one label 0..7 per line;
-1 marks a frame without one). Line i after the header is frame i, image ``{i:05d}.jpg``. The two annotation
sets are joined per frame: a frame may carry an expression, valence/arousal, or both. Codes are mapped with
``labels.AFFWILD2_TO_AFFECTNET``; 7 "Other" has no AffectNet id and leaves the expression missing (counted).
Source: Kollias & Zafeiriou, ABAW challenge papers (2020-2023) and the README of the annotation release.

Splits: Train_Set -> "train", Validation_Set -> "val" (the test labels are not public; like AffectNet's, the
validation set becomes "test" and "val" is carved from train, grouped). If the two challenges put one video in
different sets, the video goes to "val" (an evaluation part never loses a video it was published with).
Groups: the video; ``<name>_left`` / ``<name>_right`` (two people in one video) are one group.
Frames without a cropped face are normal in this release (the face was not detected) and are only counted.
"""

from __future__ import annotations

from pathlib import Path

from affectkit.data.formats._common import (
    DEFAULT_OPTIONS,
    Collector,
    ReadOptions,
    ReadRecords,
    image_names,
    scandir_names,
)
from affectkit.labels import AFFWILD2_TO_AFFECTNET

NAME = "affwild2"
DESCRIPTION = (
    "cropped_aligned/<video>/00001.jpg with VA_Estimation_Challenge/ and/or "
    "EXPR_Classification_Challenge/ {Train_Set,Validation_Set}/<video>.txt (Aff-Wild2, ABAW)"
)
CHALLENGES = {"va": "VA_Estimation_Challenge", "expr": "EXPR_Classification_Challenge"}
SET_SPLITS = {"Train_Set": "train", "Validation_Set": "val"}
VA_MISSING = -5.0
EXPR_MISSING, EXPR_OTHER = -1, 7
_BAD = "bad line"  # a line already reported: no label, and not counted again


def _annotation_root(root: Path) -> Path | None:
    """The folder holding the challenge folders: root itself or one of its subfolders."""
    candidates = [root, *sorted(root / n for n, is_dir in scandir_names(root).items() if is_dir)]
    for folder in candidates:
        if any((folder / name).is_dir() for name in CHALLENGES.values()):
            return folder
    return None


def looks_like(root: Path) -> bool:
    return (root / "cropped_aligned").is_dir() and _annotation_root(root) is not None


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read Aff-Wild2 at ``root``; see the module docstring."""
    collector = Collector(NAME, root, options.strict, group_kind="video")
    annotations = _annotation_root(root)
    if annotations is None or not (root / "cropped_aligned").is_dir():
        raise ValueError(
            f"no Aff-Wild2 layout ({root}): expected cropped_aligned/ and {' or '.join(CHALLENGES.values())}/"
        )
    labels: dict[str, dict[str, tuple[str, list]]] = {}  # video -> task -> (split, per-frame values)
    for task, challenge in CHALLENGES.items():
        for set_name, split in SET_SPLITS.items():
            folder = annotations / challenge / set_name
            for file in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
                values = _read_file(collector, file, task)
                if values is not None:
                    labels.setdefault(file.stem, {})[task] = (split, values)
    for video in sorted(labels):
        _add_video(collector, root, video, labels[video])
    return collector.records()


def _read_file(collector: Collector, file: Path, task: str) -> list | None:
    """Per-frame values of one annotation file: (valence, arousal) or None / an expression code or None."""
    text = collector.read_text(file)
    if text is None:
        return None
    lines = text.splitlines()
    header = lines[0].replace(" ", "").lower() if lines else ""
    expected = "valence,arousal" if task == "va" else "neutral,anger"
    if not header.startswith(expected):
        collector.problem(
            file, f"first line is {header[:40]!r}, expected the {expected}... header", "unreadable annotation"
        )
        return None
    values: list = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            values.append(_parse_va(line) if task == "va" else _parse_expr(line))
        except ValueError as err:
            collector.problem(f"{file}:{number}", str(err), "bad annotation")
            values.append(_BAD)
    return values


def _parse_va(line: str) -> tuple[float, float] | None:
    parts = line.split(",")
    try:
        v, a = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected 'valence,arousal', got {line.strip()!r}") from None
    if v == VA_MISSING or a == VA_MISSING:
        return None
    if not (abs(v) <= 1 and abs(a) <= 1):
        raise ValueError(f"valence/arousal {line.strip()!r} outside [-1, 1] (and not -5 for missing)")
    return v, a


def _parse_expr(line: str) -> int | None:
    try:
        code = int(line.strip())
    except ValueError:
        raise ValueError(f"expected one expression code, got {line.strip()!r}") from None
    if code == EXPR_MISSING:
        return None
    if code not in AFFWILD2_TO_AFFECTNET:
        raise ValueError(f"unknown expression code {code} (expected -1 or 0..7)")
    return code


def _add_video(collector: Collector, root: Path, video: str, tasks: dict[str, tuple[str, list]]) -> None:
    splits = {split for split, _ in tasks.values()}
    split = "val" if "val" in splits else "train"
    va = tasks.get("va", ("", []))[1]
    expr = tasks.get("expr", ("", []))[1]
    group = video.removesuffix("_left").removesuffix("_right")
    folder = root / "cropped_aligned" / video
    present = {name.rsplit(".", 1)[0]: name for name in image_names(folder)}
    for i in range(max(len(va), len(expr))):
        collector.n_found += 1
        pair = va[i] if i < len(va) else None
        code = expr[i] if i < len(expr) else None
        bad = _BAD in (pair, code)
        pair, code = (None if v == _BAD else v for v in (pair, code))
        if code == EXPR_OTHER:
            collector.drop("affwild2 expression 7 (Other)")
        expression = AFFWILD2_TO_AFFECTNET[code] if code is not None else None
        if pair is None and expression is None:
            if not bad:
                collector.drop("no usable label")
            continue
        name = present.get(f"{i + 1:05d}")
        if name is None:
            collector.drop("affwild2 frame without a cropped face")
            continue
        collector.add(
            str(folder / name),
            f"cropped_aligned/{video}/{name}",
            expression=expression,
            valence=pair[0] if pair else None,
            arousal=pair[1] if pair else None,
            split=split,
            group=group,
            parsed=True,
        )
