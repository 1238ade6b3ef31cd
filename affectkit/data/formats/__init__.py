"""Dataset readers, one per on-disk layout, and format detection.

Every reader returns ``affectkit.data.records.Records`` (a ``ReadRecords`` that also knows ``n_found``, the
number of entries met including dropped ones). Label rules shared by all readers are in ``_common``.
A reader module has ``NAME``, ``DESCRIPTION`` (what detection looks for, shown when nothing matches),
``looks_like(path)`` and ``read(root, options: ReadOptions)``. Detection never guesses labels: a folder that
matches no layout is an error listing every layout, never read as numbered classes.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from affectkit.data.formats import (
    afew_va,
    affectnet_csv,
    affectnet_npy,
    affwild2,
    ckplus,
    expw,
    fer2013_csv,
    ferplus,
    image_folder,
    jaffe,
    manifest,
    rafdb,
)
from affectkit.data.formats._common import ReadOptions, ReadRecords
from affectkit.data.records import Records

# Detection order: the most specific layouts first (an image_folder test would also accept CK+48's folders).
READERS: dict[str, ModuleType] = {
    "ferplus": ferplus,
    "affectnet_csv": affectnet_csv,
    "affectnet_npy": affectnet_npy,
    "fer2013_csv": fer2013_csv,
    "rafdb": rafdb,
    "expw": expw,
    "affwild2": affwild2,
    "ckplus": ckplus,
    "afew_va": afew_va,
    "jaffe": jaffe,
    "manifest": manifest,
    "image_folder": image_folder,
}
# Readers that also take a single file as the dataset path.
_FILE_READERS = ("fer2013_csv", "manifest")
FORMATS: tuple[str, ...] = tuple(READERS)
_MISSING = "no such file or folder ({path}): check the dataset path"


def detect_format(path: str | Path) -> str:
    """Name of the layout found at ``path`` (a folder, or a manifest CSV file).

    Raises FileNotFoundError if the path does not exist, ValueError listing what each layout looks for if
    none matches.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(_MISSING.format(path=path))
    if path.is_file():
        for name in _FILE_READERS:
            if READERS[name].looks_like(path):
                return name
        raise ValueError(
            f"not a dataset file ({path}): a file is read only as a manifest CSV with a 'path' "
            f"column or as FER2013's fer2013.csv; for other layouts pass the dataset folder"
        )
    for name, reader in READERS.items():
        if reader.looks_like(path):
            return name
    looked_for = "\n".join(f"  {name}: {reader.DESCRIPTION}" for name, reader in READERS.items())
    raise ValueError(
        f"no dataset layout found ({path}): arrange the data as one of these layouts or pass "
        f"--format (class folders named by id 0..7: --format image_folder --numeric-classes):\n"
        f"{looked_for}"
    )


def read_dataset(
    path: str | Path,
    format: str | None = None,  # shadows the builtin: it is the CLI flag's name
    strict: bool = False,
    label_mode: str = "majority",
    numeric_classes: bool = False,
    peak_frames: int = 3,
) -> Records:
    """Read a dataset into ``Records``, detecting the layout unless ``format`` is given.

    ``strict=True`` turns missing/unreadable annotation files into errors instead of warnings.
    ``label_mode`` ("majority" or "distribution") matters for FER+ only (see ``formats.ferplus``).
    ``numeric_classes=True`` reads image_folder class folders named 0..7 as AffectNet ids (it implies
    ``format="image_folder"``); ``peak_frames`` is the number of labelled frames at the end of a CK+ sequence.
    """
    if numeric_classes and format not in (None, "image_folder"):
        raise ValueError(
            f"numeric class folders apply to image_folder only (numeric_classes with format "
            f"{format}): drop --numeric-classes or use --format image_folder"
        )
    if format is None:
        format = "image_folder" if numeric_classes else detect_format(path)
    if label_mode not in ferplus.LABEL_MODES:
        raise ValueError(f"invalid value {label_mode!r} (label_mode): use one of {', '.join(ferplus.LABEL_MODES)}")
    if format not in READERS:
        raise ValueError(f"unknown format {format!r} (format): use one of {', '.join(FORMATS)}")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(_MISSING.format(path=path))
    options = ReadOptions(
        strict=strict, label_mode=label_mode, numeric_classes=numeric_classes, peak_frames=peak_frames
    )
    return READERS[format].read(path.resolve(), options)


__all__ = ["FORMATS", "READERS", "ReadOptions", "ReadRecords", "detect_format", "read_dataset"]
