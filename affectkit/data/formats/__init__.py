"""Dataset readers, one per on-disk layout, and format detection.

Every reader returns ``affectkit.data.records.Records`` (a ``ReadRecords`` that also knows ``n_found``, the
number of entries met including dropped ones). Label rules shared by all readers are in ``_common``.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from affectkit.data.formats import affectnet_csv, affectnet_npy, ferplus, image_folder, manifest
from affectkit.data.formats._common import ReadRecords
from affectkit.data.records import Records

# Detection order: the most specific layouts first (an image_folder test would also accept some others).
READERS: dict[str, ModuleType] = {
    "ferplus": ferplus,
    "affectnet_csv": affectnet_csv,
    "affectnet_npy": affectnet_npy,
    "manifest": manifest,
    "image_folder": image_folder,
}
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
        if manifest.looks_like(path):
            return "manifest"
        raise ValueError(f"not a manifest CSV ({path}): a file is read only as a manifest CSV with a 'path' "
                         f"column; for other layouts pass the dataset folder")
    for name, reader in READERS.items():
        if reader.looks_like(path):
            return name
    looked_for = "\n".join(f"  {name}: {reader.DESCRIPTION}" for name, reader in READERS.items())
    raise ValueError(f"no dataset layout found ({path}): arrange the data as one of these layouts or pass "
                     f"--format:\n{looked_for}")


def read_dataset(
    path: str | Path,
    format: str | None = None,  # noqa: A002 - the CLI flag's name
    strict: bool = False,
    label_mode: str = "majority",
) -> Records:
    """Read a dataset into ``Records``, detecting the layout unless ``format`` is given.

    ``strict=True`` turns missing/unreadable annotation files into errors instead of warnings.
    ``label_mode`` ("majority" or "distribution") matters for FER+ only (see ``formats.ferplus``).
    """
    if format is None:
        format = detect_format(path)
    if label_mode not in ferplus.LABEL_MODES:
        raise ValueError(f"invalid value {label_mode!r} (label_mode): use one of {', '.join(ferplus.LABEL_MODES)}")
    if format not in READERS:
        raise ValueError(f"unknown format {format!r} (format): use one of {', '.join(FORMATS)}")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(_MISSING.format(path=path))
    return READERS[format].read(path.resolve(), strict=strict, label_mode=label_mode)


__all__ = ["FORMATS", "READERS", "ReadRecords", "detect_format", "read_dataset"]
