"""FER2013 as released for the Kaggle/ICML 2013 challenge: one ``fer2013.csv`` holding the pixels themselves.

Columns ``emotion,pixels,Usage`` (``icml_face_data.csv``, the same data, names them ``emotion, Usage, pixels``):
``emotion`` 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral (mapped with
``labels.FER2013_TO_AFFECTNET``); ``pixels`` 48x48 gray values as 2304 space-separated numbers, row-major;
``Usage`` Training / PublicTest / PrivateTest -> "train" / "val" / "test" (FER+'s Valid/Test are the same
images). Source: the challenge's data page (kaggle.com/c/challenges-in-representation-learning-facial-expression-
recognition-challenge/data) and the dataset's README copies; 35,887 rows (28,709 / 3,589 / 3,589).

No image files exist: ``Sample.image`` is the decoded (48, 48) uint8 array, which the decoded-image store and
every other consumer take like a file (a store is keyed by the pixels themselves). ``Sample.key`` is
``fer2013.csv#<row>`` (1-based data row), stable across copies of the file. A row with the wrong number of
pixels, values outside 0..255, or an unknown emotion/Usage is skipped with a warning naming the line.
The root may be the CSV file itself, the folder holding it, or the folder holding ``fer2013/fer2013.csv``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from affectkit.data.formats._common import DEFAULT_OPTIONS, Collector, ReadOptions, ReadRecords, csv_header
from affectkit.labels import FER2013_TO_AFFECTNET

NAME = "fer2013_csv"
DESCRIPTION = "fer2013.csv (or icml_face_data.csv) with emotion, pixels and Usage columns, or a folder holding it"
FILE_NAMES = ("fer2013.csv", "icml_face_data.csv")
USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}


def find_csv(path: Path) -> Path | None:
    """The FER2013 CSV at ``path`` (the file, or in the folder or its ``fer2013/``), or None."""
    if path.is_file():
        candidates = [path]
    else:
        candidates = [folder / name for folder in (path, path / "fer2013") for name in FILE_NAMES]
    for candidate in candidates:
        if candidate.is_file() and {"emotion", "pixels"} <= set(csv_header(candidate)):
            return candidate
    return None


def looks_like(path: Path) -> bool:
    return find_csv(path) is not None


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read the FER2013 CSV found at ``root``; see the module docstring."""
    table = find_csv(root)
    if table is None:
        raise ValueError(f"no FER2013 CSV ({root}): expected {' or '.join(FILE_NAMES)} with emotion and pixels columns")
    collector = Collector(NAME, table.parent, options.strict)
    with open(table, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip().lower() for c in next(reader)]
        col: dict[str, int] = {name: header.index(name) for name in ("emotion", "pixels", "usage") if name in header}
        for row_number, row in enumerate(reader, start=1):
            if not row or not any(c.strip() for c in row):
                continue
            collector.n_found += 1
            _read_row(collector, table, row_number, row, col)
    return collector.records()


def _read_row(collector: Collector, table: Path, row_number: int, row: list[str], col: dict[str, int]) -> None:
    source = f"{table}:{row_number + 1}"  # the file's line number (the header is line 1)
    cells = {name: row[i].strip() if i < len(row) else "" for name, i in col.items()}
    found, expression = collector.code(FER2013_TO_AFFECTNET, cells["emotion"], source, "emotion")
    if not found:
        return
    split = None
    if "usage" in cells:
        split = USAGE.get(cells["usage"].lower())
        if split is None:
            collector.problem(
                source,
                f"unknown Usage {cells['usage']!r} (expected Training, PublicTest or PrivateTest)",
                "bad annotation",
            )
            return
    pixels = _pixels(cells["pixels"])
    if isinstance(pixels, str):
        collector.problem(source, pixels, "bad pixels")
        return
    collector.add(pixels, f"{table.name}#{row_number:05d}", expression=expression, split=split, parsed=True)


def _pixels(text: str) -> np.ndarray | str:
    """A square uint8 gray image from space-separated values, or the reason it is not one."""
    try:  # text-mode fromstring: ~10x faster than splitting into Python strings (35,887 rows of 2,304 values)
        array = np.fromstring(text, dtype=np.int32, sep=" ")
    except ValueError:
        return "pixel values are not integers"
    side = math.isqrt(array.size)
    if not array.size or side * side != array.size:
        return f"{array.size} pixel values are not a square image (48x48 = 2304)"
    if array.min() < 0 or array.max() > 255:
        return "pixel values outside 0..255"
    return array.astype(np.uint8).reshape(side, side)
