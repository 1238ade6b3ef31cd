"""FER+ as produced by Microsoft's generation script: ``FER2013{Train,Valid,Test}/`` each with ``label.csv``.

label.csv has no header: ``file_name, "(x, y, w, h)", 10 vote counts`` in the order of
``labels.FERPLUS_COLUMNS`` (8 emotions, unknown, NF). The 8 emotion columns are mapped to AffectNet ids with
``labels.FERPLUS_TO_AFFECTNET``. Splits: Train -> "train", Valid -> "val", Test -> "test".

Label modes:

- ``"majority"``: expression = the emotion with the most votes. Dropped (counted in ``excluded``): images whose
  unknown or NF vote is at least the top emotion vote (``"ferplus top vote unknown/NF"``; this includes images
  with no emotion votes) and images whose top emotion vote is shared by two emotions
  (``"ferplus tied top emotion vote"``).
- ``"distribution"``: the same unknown/NF images are dropped, but tied *training* images are kept; training
  uses ``soft_label``. ``expression`` is still set to the top emotion (ties -> lowest AffectNet id) so that
  stratified splits have a class. Valid/Test images follow the majority rule in both modes, so validation
  (model selection) and reported metrics are always the standard majority-vote accuracy.

``soft_label`` (8 emotion votes normalised to sum 1, AffectNet order) is filled for every kept image.
The root may also be a single ``FER2013*`` folder: then only that split is read (keys stay relative to its
parent, so split files match those of the whole dataset).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from affectkit.data.formats._common import (
    DEFAULT_OPTIONS,
    Collector,
    ReadOptions,
    ReadRecords,
    parse_box,
    scandir_names,
)
from affectkit.labels import FERPLUS_COLUMNS, FERPLUS_TO_AFFECTNET, NUM_EXPRESSIONS

NAME = "ferplus"
SPLIT_FOLDERS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
LABEL_MODES = ("majority", "distribution")
DESCRIPTION = "FER2013Train/, FER2013Valid/ and/or FER2013Test/ folders, each with label.csv"
_N_EMOTIONS = 8
# Column j of the 8 emotion votes goes to AffectNet position _ORDER[j].
_ORDER = np.asarray(FERPLUS_TO_AFFECTNET)


def looks_like(root: Path) -> bool:
    if root.name in SPLIT_FOLDERS and (root / "label.csv").is_file():
        return True
    return any((root / f / "label.csv").is_file() for f in SPLIT_FOLDERS)


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read the FER+ split folders present under root; see the module docstring."""
    label_mode = options.label_mode
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    if root.name in SPLIT_FOLDERS and (root / "label.csv").is_file():
        parts = [root]
        root = root.parent
    else:
        parts = [root / f for f in SPLIT_FOLDERS if (root / f / "label.csv").is_file()]
    if not parts:
        raise ValueError(f"{root}: no {', '.join(SPLIT_FOLDERS)} folder with a label.csv")
    collector = Collector(NAME, root, options.strict)
    for folder in parts:
        _read_folder(collector, folder, SPLIT_FOLDERS[folder.name], label_mode)
    return collector.records()


def _read_folder(collector: Collector, folder: Path, split: str, label_mode: str) -> None:
    label_csv = folder / "label.csv"
    with open(label_csv, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    present = scandir_names(folder)
    names, boxes, votes = [], [], np.zeros((len(rows), len(FERPLUS_COLUMNS)), dtype=np.float64)
    for i, row in enumerate(rows):
        source = f"{label_csv}:{i + 1}"
        if len(row) != 2 + len(FERPLUS_COLUMNS):
            raise ValueError(
                f"{source}: expected {2 + len(FERPLUS_COLUMNS)} fields "
                f"(file, box, {len(FERPLUS_COLUMNS)} votes), got {len(row)}"
            )
        names.append(row[0].strip())
        boxes.append(row[1])
        try:
            votes[i] = [float(v) for v in row[2:]]
        except ValueError as err:
            raise ValueError(f"{source}: vote counts are not numbers ({err})") from err
        if (votes[i] < 0).any() or not np.isfinite(votes[i]).all():
            raise ValueError(f"{source}: negative or non-finite vote count in {row[2:]}")

    emotion = np.zeros((len(rows), NUM_EXPRESSIONS))
    emotion[:, _ORDER] = votes[:, :_N_EMOTIONS]  # AffectNet order
    top = emotion.max(axis=1)
    other = votes[:, _N_EMOTIONS:].max(axis=1)
    unknown_top = other >= top
    tied = (emotion == top[:, None]).sum(axis=1) > 1
    expression = emotion.argmax(axis=1)
    totals = emotion.sum(axis=1, keepdims=True)
    soft = np.divide(emotion, totals, out=np.zeros_like(emotion), where=totals > 0).astype(np.float32)

    prefix = f"{folder.name}/"
    folder_str = str(folder)
    for i, name in enumerate(names):
        collector.n_found += 1
        if name not in present:
            collector.problem(f"{folder_str}/{name}", "listed in label.csv but missing", "missing image")
            continue
        if unknown_top[i]:
            collector.drop("ferplus top vote unknown/NF")
            continue
        if tied[i] and (label_mode == "majority" or split != "train"):
            collector.drop("ferplus tied top emotion vote")
            continue
        collector.add(
            f"{folder_str}/{name}",
            prefix + name,
            expression=int(expression[i]),
            box=parse_box(boxes[i], f"{label_csv}:{i + 1}"),
            soft_label=soft[i],
            split=split,
            parsed=True,
        )
