"""A CSV manifest: a ``path`` column plus any of ``expression``, ``valence``, ``arousal``, ``split``.

Paths are relative to the CSV's folder (absolute paths are kept as they are); the dataset root is that folder
and ``Sample.key`` is the path as written (posix). Each label cell may be empty; ``expression`` is an id
(0..10, AffectNet rules) or a name/synonym. ``split`` values: train/val/test (or training/valid/validation/
testing); an empty split cell is allowed only if every row's is empty. Given a folder, the manifest is
``manifest.csv`` or else the only CSV there whose header has a ``path`` column.

Paths are normalised (``./a.jpg`` and ``a.jpg`` are one image, and so is its key). An image listed twice with
the same labels is kept once (counted as ``"duplicate row (same labels)"``); listed with different labels or
splits, it is an error naming the lines when strict, else every row of it is dropped with a warning naming the
lines (counted as ``"conflicting duplicate rows"``).
"""

from __future__ import annotations

import csv
import posixpath
from pathlib import Path

from affectkit.data.formats._common import (
    DEFAULT_OPTIONS,
    Collector,
    ReadOptions,
    ReadRecords,
    csv_header,
    parse_expression,
    parse_va,
    split_name,
)

NAME = "manifest"
LABEL_COLUMNS = ("expression", "valence", "arousal")
DESCRIPTION = "a CSV file (manifest.csv, or any *.csv) with a 'path' column and expression/valence/arousal columns"


def find_manifest(path: Path) -> Path | None:
    """The manifest CSV for a file or folder path, or None. Several candidates in a folder -> ValueError."""
    if path.is_file():
        return path if "path" in csv_header(path) else None
    if not path.is_dir():
        return None
    if "path" in csv_header(path / "manifest.csv"):
        return path / "manifest.csv"
    candidates = sorted(p for p in path.glob("*.csv") if "path" in csv_header(p))
    if len(candidates) > 1:
        raise ValueError(
            f"{path}: several manifest CSVs ({', '.join(p.name for p in candidates)}); pass the one to use"
        )
    return candidates[0] if candidates else None


def looks_like(path: Path) -> bool:
    try:
        return find_manifest(path) is not None
    except ValueError:
        return True  # ambiguous, but a manifest: read() gives the error


def read(path: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read a manifest CSV (or the folder holding it); see the module docstring."""
    manifest = find_manifest(path)
    if manifest is None:
        raise ValueError(f"{path}: no CSV with a 'path' column found")
    root = manifest.parent
    col, rows = _table(manifest)

    def get(row: list[str], name: str) -> str:
        i = col.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    collector = Collector(NAME, root, options.strict)
    root_str = str(root)
    n_no_split = 0
    rows_by_image: dict[str, list[tuple[int, str, dict[str, str]]]] = {}  # first occurrence order
    for line, row in enumerate(rows, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        collector.n_found += 1
        source = f"{manifest}:{line}"
        rel = get(row, "path").replace("\\", "/")
        if not rel:
            collector.problem(source, "row without a path", "missing image")
            continue
        rel = posixpath.normpath(rel)  # ./a.jpg and a.jpg are one image
        image = rel if Path(rel).is_absolute() else f"{root_str}/{rel}"
        rows_by_image.setdefault(posixpath.normpath(image), []).append(
            (line, rel, {name: get(row, name) for name in ("split", *LABEL_COLUMNS)})
        )
    for image, entries in rows_by_image.items():
        chosen, rel, cells = _one_row(manifest, image, entries, collector)
        if chosen is None:
            continue
        source = f"{manifest}:{chosen}"
        split = None
        if "split" in col:
            raw = cells["split"]
            split = split_name(raw) if raw else None
            if raw and split is None:
                raise ValueError(f"{source}: unknown split {raw!r}; use train, val or test")
            n_no_split += split is None
        collector.add(
            image,
            rel,
            expression=cells["expression"],
            valence=cells["valence"],
            arousal=cells["arousal"],
            source=source,
            split=split,
        )
    if 0 < n_no_split < collector.n_found and any(s.split for s in collector.samples):
        raise ValueError(
            f"{manifest}: {n_no_split} row(s) have an empty split while others have one; fill every split cell or none"
        )
    return collector.records()


def _table(manifest: Path) -> tuple[dict[str, int], list[list[str]]]:
    """(the column of each known name the header has, the rows after the header); a label column is required."""
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip().lower() for c in next(reader, [])]
        rows = list(reader)
    if not any(c in header for c in LABEL_COLUMNS):
        raise ValueError(f"{manifest}: no label column; expected any of {', '.join(LABEL_COLUMNS)} next to 'path'")
    return {name: header.index(name) for name in ("path", "split", *LABEL_COLUMNS) if name in header}, rows


def _one_row(
    manifest: Path, image: str, entries: list[tuple[int, str, dict[str, str]]], collector: Collector
) -> tuple[int | None, str, dict[str, str]]:
    """The row to use for an image listed once or more. Identical repeats are kept once (counted); repeats
    with different labels or splits are an error naming their lines when strict, else all dropped with a
    warning (counted in ``excluded`` and ``problems``)."""
    first = entries[0]
    if len(entries) == 1:
        return first
    labels = {_labels(cells, f"{manifest}:{line}") for line, _, cells in entries}
    lines = ", ".join(str(line) for line, _, _ in entries)
    if len(labels) == 1:
        collector.excluded["duplicate row (same labels)"] += len(entries) - 1
        return first
    reason = f"listed on lines {lines} with different labels; fix or remove the rows"
    collector.problem(f"{manifest} ({first[1]})", reason, "conflicting duplicate rows")  # counts one row
    collector.excluded["conflicting duplicate rows"] += len(entries) - 1  # every row of the image is dropped
    return None, first[1], first[2]


def _labels(cells: dict[str, str], source: str) -> tuple:
    """A row's parsed labels and split, to compare repeated rows ("3" and "sad " are the same label)."""
    return (
        parse_expression(cells["expression"], source)[0],
        parse_va(cells["valence"], "valence", source)[0],
        parse_va(cells["arousal"], "arousal", source)[0],
        split_name(cells["split"]) or cells["split"],
    )
