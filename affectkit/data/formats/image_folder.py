"""One folder per class: ``root/<class>/*.jpg`` (or ``root/{train,val,test}/<class>/*.jpg``).

Class folder names are matched case-insensitively with ``labels.expression_id`` (synonyms such as "happiness",
"angry" work). Folders named by AffectNet id ("0".."7") are classes only with ``numeric_classes`` (CLI
``--format image_folder --numeric-classes``): a numeric folder is more often a clip or an id (AFEW-VA's ``001/``,
AffectNet's ``Manually_Annotated_Images/689/``), so detection never takes one for a class. A folder name that is
neither a class nor (at the top level) a split name is an error naming it. Hidden folders (".name") and files
other than images are ignored. Samples have no group (the layout does not say who is in an image).
"""

from __future__ import annotations

import os
from pathlib import Path

from affectkit.data.formats._common import (
    DEFAULT_OPTIONS,
    IMAGE_EXTENSIONS,
    Collector,
    ReadOptions,
    ReadRecords,
    scandir_names,
    split_name,
)
from affectkit.labels import expression_id

NAME = "image_folder"
DESCRIPTION = "class folders (e.g. happy/, sad/) holding images, optionally inside train/, val/, test/"


def _subdirs(folder: Path) -> list[str]:
    return sorted(n for n, is_dir in scandir_names(folder).items() if is_dir and not n.startswith((".", "_")))


def _class_id(name: str, numeric: bool = False) -> int | None:
    if name.strip().isdigit() and not numeric:
        return None
    try:
        return expression_id(name)
    except KeyError:
        return None


def _has_images(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS for e in it)


def looks_like(root: Path) -> bool:
    """True if root has a class folder with images, directly or in a train/val/test folder."""
    subdirs = _subdirs(root)
    for name in subdirs:
        if _class_id(name) is not None and _has_images(root / name):
            return True
        if split_name(name) and any(_class_id(c) is not None for c in _subdirs(root / name)):
            return True
    return False


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read class folders (with or without split folders above them); see the module docstring."""
    collector = Collector(NAME, root, options.strict)
    subdirs = _subdirs(root)
    splits = {n: split_name(n) for n in subdirs if split_name(n) and _class_id(n, True) is None}
    if splits:
        unknown = [n for n in subdirs if n not in splits]
        if unknown:
            raise ValueError(
                f"{root}: folder(s) {', '.join(unknown)} are neither split folders nor expected here "
                f"(found split folders {', '.join(splits)})"
            )
        for folder, split in splits.items():
            _read_classes(collector, root, root / folder, split, options.numeric_classes)
    else:
        _read_classes(collector, root, root, None, options.numeric_classes)
    return collector.records()


def _read_classes(collector: Collector, root: Path, folder: Path, split: str | None, numeric: bool) -> None:
    classes = {n: _class_id(n, numeric) for n in _subdirs(folder)}
    unknown = sorted(n for n, c in classes.items() if c is None)
    if unknown:
        hint = (
            "; folders named by AffectNet id 0..7 are read only with --numeric-classes (numeric_classes: true)"
            if not numeric and any(_class_id(n, True) is not None for n in unknown)
            else ""
        )
        raise ValueError(
            f"class folder(s) {', '.join(unknown)} match no expression ({folder}): "
            f"use one of the 8 expression names (or a synonym){hint}"
        )
    prefix = folder.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    for name, class_id in classes.items():
        class_dir = folder / name
        files = sorted(
            n
            for n, is_dir in scandir_names(class_dir).items()
            if not is_dir and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS and not n.startswith(".")
        )
        class_str = str(class_dir)
        for file in files:
            collector.n_found += 1
            collector.add(
                f"{class_str}/{file}", f"{prefix}{name}/{file}", expression=class_id, parsed=True, split=split
            )
