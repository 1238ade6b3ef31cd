"""AffectNet's CSV release: ``training.csv`` (split "train") and ``validation.csv`` (split "val").

Header: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression, valence,
arousal. Image paths are relative to the root, or to ``root/Manually_Annotated_Images/``: the base folder is
chosen once per CSV by probing its first rows (no stat per image; missing images are found by the image scan).
``box = (face_x, face_y, face_width, face_height)``; landmarks "x1;y1;x2;y2;..." -> (N, 2).
"""

from __future__ import annotations

import csv
from pathlib import Path

from affectkit.data.formats._common import (
    DEFAULT_OPTIONS,
    Collector,
    ReadOptions,
    ReadRecords,
    parse_box,
    parse_landmarks,
)

NAME = "affectnet_csv"
CSV_SPLITS = {"training.csv": "train", "validation.csv": "val"}
COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
IMAGE_BASES = ("", "Manually_Annotated_Images")
DESCRIPTION = "training.csv and/or validation.csv with columns " + ", ".join(COLUMNS)
_PROBE_ROWS = 20


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [c.strip() for c in next(csv.reader(f), [])]


def looks_like(root: Path) -> bool:
    """True if root holds training.csv or validation.csv with an AffectNet header."""
    for name in CSV_SPLITS:
        path = root / name
        if path.is_file():
            try:
                if "subDirectory_filePath" in _header(path):
                    return True
            except (OSError, UnicodeDecodeError):
                continue
    return False


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read training.csv / validation.csv; see the module docstring and ``_common`` for the label rules."""
    collector = Collector(NAME, root, options.strict)
    found = [(root / n, s) for n, s in CSV_SPLITS.items() if (root / n).is_file()]
    if not found:
        raise ValueError(f"{root}: no training.csv or validation.csv")
    for path, split in found:
        _read_csv(collector, root, path, split)
    return collector.records()


def _choose_base(root: Path, rels: list[str]) -> str:
    """The image base folder ("" or Manually_Annotated_Images) under which the probed paths exist."""
    best, best_hits = "", -1
    for base in IMAGE_BASES:
        folder = root / base if base else root
        hits = sum((folder / rel).is_file() for rel in rels)
        if hits > best_hits:
            best, best_hits = base, hits
    return best


def _read_csv(collector: Collector, root: Path, path: Path, split: str) -> None:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        missing = [c for c in ("subDirectory_filePath", "expression") if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
        col = {name: header.index(name) for name in COLUMNS if name in header}
        rows = list(reader)
    rels = [r[col["subDirectory_filePath"]].strip().replace("\\", "/") for r in rows[:_PROBE_ROWS] if r]
    base = _choose_base(root, rels)
    prefix = f"{base}/" if base else ""
    root_str = str(root)

    def get(row: list[str], name: str) -> str:
        i = col.get(name)
        return row[i] if i is not None and i < len(row) else ""

    for line, row in enumerate(rows, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        collector.n_found += 1
        source = f"{path}:{line}"
        rel = get(row, "subDirectory_filePath").strip().replace("\\", "/")
        if not rel:
            collector.problem(source, "row without an image path", "missing image")
            continue
        box = None
        if all(get(row, k).strip() for k in ("face_x", "face_y", "face_width", "face_height")):
            box = parse_box(" ".join(get(row, k) for k in ("face_x", "face_y", "face_width", "face_height")), source)
        landmarks = parse_landmarks(get(row, "facial_landmarks"), source)
        key = prefix + rel
        collector.add(
            f"{root_str}/{key}",
            key,
            expression=get(row, "expression"),
            valence=get(row, "valence"),
            arousal=get(row, "arousal"),
            source=source,
            landmarks=landmarks,
            box=box,
            split=split,
        )
