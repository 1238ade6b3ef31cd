"""Label rules shared by every reader, and the collector that applies the bad-file policy.

Conventions (all readers):

- AffectNet expression ids 8 (none), 9 (uncertain), 10 (no-face) become ``expression=None`` and are counted in
  ``Records.excluded`` as e.g. ``"expression 8 (none)"``; the sample is kept if it still has valence/arousal.
- Valence/arousal of -2 (AffectNet's "invalid") become ``None`` and are counted as ``"valence -2 (invalid)"``.
- A sample left with no label at all is dropped and counted as ``"no usable label"``.
- Out-of-range labels (expression outside 0..10, |valence| or |arousal| > 1 other than -2, NaN) raise
  ``ValueError`` naming the file and the value: they mean a broken dataset, not a bad sample.
- Missing or unreadable annotation files (and images listed but absent) are skipped with a warning naming the
  file and counted in ``excluded`` and ``problems``; with ``strict=True`` they raise ``ValueError`` instead.
  Readers of datasets with their own label codes (FER2013, RAF-DB, ExpW, CK+, JAFFE, AFEW-VA, Aff-Wild2) treat
  a malformed line or an unknown code the same way: that entry is skipped with a warning, the rest is read.
- A label a dataset does not have is ``None``, never 0 (an expression-only set has no valence/arousal).
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectkit.data.images import IMAGE_EXTENSIONS
from affectkit.data.records import Records, Sample
from affectkit.labels import AFFECTNET_INVALID_VA, AFFECTNET_NON_EXPRESSION, NUM_EXPRESSIONS, expression_id

# Beyond this many per-file warnings in one read, the rest are summed up in one closing warning.
MAX_FILE_WARNINGS = 20

_SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def split_name(value: str) -> str | None:
    """Normalised split name ("train"/"val"/"test") of a folder or column value, or None if not one."""
    return _SPLIT_NAMES.get(str(value).strip().lower())


@dataclass(frozen=True)
class ReadOptions:
    """How to read a dataset: ``read_dataset``'s options (and the config keys of the same names).

    ``strict``: bad files are errors, not skipped with a warning. ``label_mode``: FER+ majority or distribution.
    ``numeric_classes``: image_folder class folders named 0..7 are AffectNet ids (never guessed: a clip or id
    folder such as ``001/`` is not a class). ``peak_frames``: CK+ frames labelled at the end of each sequence.
    """

    strict: bool = False
    label_mode: str = "majority"
    numeric_classes: bool = False
    peak_frames: int = 3


DEFAULT_OPTIONS = ReadOptions()


@dataclass
class ReadRecords(Records):
    """``Records`` plus how many entries the reader met in total (kept and dropped)."""

    n_found: int | None = None


def _scalar(value: object, source: str) -> object:
    """Unwrap a 0-d / 1-element numpy array (np.load of AffectNet's npy files) into a Python scalar."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(
                f"{source}: holds {value.size} values (an array of shape {value.shape}); a label file holds exactly one"
            )
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def parse_expression(value: object, source: str) -> tuple[int | None, str | None]:
    """``(id, exclusion reason)`` of a raw expression label: an id (int, float, numeric str) or a name.

    Blank -> ``(None, None)``; AffectNet 8..10 -> ``(None, "expression 8 (none)")``; out of range -> ValueError.
    """
    value = _scalar(value, source)
    if _is_blank(value):
        return None, None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                return expression_id(text), None
            except KeyError as err:
                raise ValueError(f"{source}: unknown expression label {text!r}") from err
    elif isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{source}: expression label {value!r} is not an id or a name")
    else:
        number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{source}: expression {value!r} is not an integer id")
    idx = int(number)
    if 0 <= idx < NUM_EXPRESSIONS:
        return idx, None
    if idx in AFFECTNET_NON_EXPRESSION:
        return None, f"expression {idx} ({AFFECTNET_NON_EXPRESSION[idx]})"
    raise ValueError(f"{source}: expression {idx} is out of range 0..10")


def parse_va(value: object, name: str, source: str) -> tuple[float | None, str | None]:
    """``(value, exclusion reason)`` of a raw valence/arousal label in [-1, 1]; -2 means invalid."""
    value = _scalar(value, source)
    if _is_blank(value):
        return None, None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {name} {value!r} is not a number") from err
    if number == AFFECTNET_INVALID_VA:
        return None, f"{name} -2 (invalid)"
    if not math.isfinite(number) or abs(number) > 1.0:
        raise ValueError(f"{source}: {name} {value!r} is out of range [-1, 1] (or -2 for invalid)")
    return number, None


def parse_landmarks(value: object, source: str) -> np.ndarray | None:
    """(N, 2) float32 landmarks from a flat array/list of numbers, or from a "x1;y1;x2;y2..." string."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if _is_blank(value):
        return None
    try:
        if isinstance(value, str):
            flat = np.array([v for v in re.split(r"[;,\s]+", value.strip()) if v], dtype=np.float32)
        else:
            flat = np.asarray(value, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: landmarks are not numbers ({err})") from err
    if flat.size % 2:
        raise ValueError(f"{source}: landmarks hold an odd number of values ({flat.size})")
    return flat.reshape(-1, 2)


class Collector:
    """Builds a reader's ``Records``: applies the label rules and the missing/unreadable-file policy."""

    def __init__(self, fmt: str, root: Path, strict: bool = False, group_kind: str | None = None):
        self.fmt, self.root, self.strict, self.group_kind = fmt, root, strict, group_kind
        self.samples: list[Sample] = []
        self.excluded: Counter = Counter()
        self.problems: list[tuple[str, str]] = []
        self.n_found = 0
        self._n_warned = 0

    def problem(self, file: str | Path, reason: str, category: str | None) -> None:
        """A missing/unreadable file: raise when strict, else warn (capped), count and remember it.

        ``category`` counts the sample as excluded under that name; None means only an optional part of it
        (landmarks) is lost and the sample is kept.
        """
        message = f"{file}: {reason}"
        if self.strict:
            raise ValueError(message)
        self.problems.append((str(file), reason))
        if category is not None:
            self.excluded[category] += 1
        if self._n_warned < MAX_FILE_WARNINGS:
            warnings.warn(
                f"skipping {message}" if category is not None else f"{message}; ignored, the image is kept",
                stacklevel=3,
            )
        self._n_warned += 1

    def drop(self, reason: str) -> None:
        """A sample dropped by a label rule (not a file problem)."""
        self.excluded[reason] += 1

    def add(
        self,
        image: str | np.ndarray,
        key: str,
        *,
        expression: object = None,
        valence: object = None,
        arousal: object = None,
        source: str | tuple[str, str, str] = "",
        landmarks: np.ndarray | None = None,
        box: tuple[int, int, int, int] | None = None,
        soft_label: np.ndarray | None = None,
        split: str | None = None,
        parsed: bool = False,
        group: str | None = None,
    ) -> Sample | None:
        """Parse raw labels (unless ``parsed``), count exclusions, keep the sample if any label is usable.

        ``source`` names the file (or the three files: expression, valence, arousal) for error messages.
        """
        src_e, src_v, src_a = (source,) * 3 if isinstance(source, str) else source
        if not parsed:
            name = image if isinstance(image, str) else key  # pixel arrays are named by their key
            expression, reason_e = parse_expression(expression, src_e or name)
            valence, reason_v = parse_va(valence, "valence", src_v or name)
            arousal, reason_a = parse_va(arousal, "arousal", src_a or name)
            for reason in (reason_e, reason_v, reason_a):
                if reason:
                    self.excluded[reason] += 1
        if expression is None and valence is None and arousal is None and soft_label is None:
            self.excluded["no usable label"] += 1
            return None
        # parsed above, or by the caller (parsed=True): typed by the parsers, not by this signature
        labels: dict[str, Any] = {"expression": expression, "valence": valence, "arousal": arousal}
        sample = Sample(
            image=image,
            **labels,
            landmarks=landmarks,
            box=box,
            soft_label=soft_label,
            split=split,
            key=key,
            group=group,
        )
        self.samples.append(sample)
        return sample

    def records(self) -> ReadRecords:
        if self._n_warned > MAX_FILE_WARNINGS:
            warnings.warn(
                f"{self._n_warned - MAX_FILE_WARNINGS} more bad files skipped in {self.root} (see Records.problems)",
                stacklevel=3,
            )
        return ReadRecords(
            samples=self.samples,
            format=self.fmt,
            root=self.root,
            excluded=self.excluded,
            problems=self.problems,
            n_found=self.n_found,
            group_kind=self.group_kind,
        )

    def code(self, table: dict, raw: object, source: str, name: str = "label") -> tuple[bool, int | None]:
        """Look a dataset's label code up in ``table`` (code -> AffectNet id or None): ``(found, id)``. An
        unknown or unparsable code is a problem (warned and skipped, an error when strict): ``(False, None)``."""
        key = raw.strip() if isinstance(raw, str) else raw
        if all(isinstance(k, int) for k in table):
            try:  # "3", "3.0000000e+00" -> 3
                number = float(key)  # type: ignore[arg-type]
                key = int(number) if math.isfinite(number) and number == int(number) else None
            except (TypeError, ValueError):
                key = None
        if key is None or key not in table:
            self.problem(
                source, f"unknown {name} {raw!r} (expected one of {', '.join(map(str, table))})", "bad annotation"
            )
            return False, None
        return True, table[key]

    def read_text(self, path: Path) -> str | None:
        """A text annotation file, or None after reporting it as unreadable (an error when strict)."""
        try:
            return path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            self.problem(path, f"unreadable annotation ({err.__class__.__name__}: {err})", "unreadable annotation")
            return None


def csv_header(path: Path) -> list[str]:
    """A CSV file's column names, stripped and lower-cased; [] if it is unreadable or empty."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [c.strip().lower() for c in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError):
        return []


def image_names(folder: Path) -> list[str]:
    """Sorted image file names in a folder (hidden files and other files left out); [] if it is absent."""
    import os

    try:
        names = scandir_names(folder)
    except OSError:
        return []
    return sorted(
        n
        for n, is_dir in names.items()
        if not is_dir and not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
    )


# Crops around landmarks: a square on the points' bounding box, this much wider per side than its larger side
# (about what a face detector's box plus the default face_margin covers: the landmarks stop at the brows).
LANDMARK_MARGIN = 0.25


def box_around(points: np.ndarray, margin: float = LANDMARK_MARGIN) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` square framing (N, 2) points with ``margin`` per side; None for no/degenerate points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if pts.size == 0 or not np.isfinite(pts).all():
        return None
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    if side < 2:
        return None
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return round(cx - side / 2), round(cy - side / 2), round(side), round(side)


def scandir_names(folder: Path) -> dict[str, bool]:
    """``name -> is_dir`` of a folder, listed once (os.scandir avoids a stat per entry on most filesystems)."""
    import os

    with os.scandir(folder) as it:
        return {e.name: e.is_dir() for e in it}


def parse_box(text: str, source: str) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` from "(x, y, w, h)" / "x y w h"; blank -> None."""
    if _is_blank(text):
        return None
    parts = [p for p in re.split(r"[(),;\s]+", text) if p]
    try:
        x, y, w, h = (int(round(float(p))) for p in parts)
    except ValueError as err:
        raise ValueError(f"{source}: face box {text!r} is not four numbers") from err
    if w <= 0 or h <= 0:
        raise ValueError(f"{source}: face box {text!r} has no area")
    return x, y, w, h
