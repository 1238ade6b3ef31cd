"""One folder per class: ``root/<class>/*.jpg`` (or ``root/{train,val,test}/<class>/*.jpg``).

Class folder names are matched case-insensitively with ``labels.expression_id`` (synonyms such as "happiness",
"angry" and ids "0".."7" work). A folder name that is neither a class nor (at the top level) a split name is an
error naming it. Hidden folders (".name") are ignored; files other than images are ignored.
"""
from __future__ import annotations

import os
from pathlib import Path

from affectkit.data.formats._common import IMAGE_EXTENSIONS, Collector, ReadRecords, scandir_names, split_name
from affectkit.labels import expression_id

NAME = "image_folder"
DESCRIPTION = "class folders (e.g. happy/, sad/) holding images, optionally inside train/, val/, test/"


def _subdirs(folder: Path) -> list[str]:
    return sorted(n for n, is_dir in scandir_names(folder).items() if is_dir and not n.startswith((".", "_")))


def _class_id(name: str) -> int | None:
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


def read(root: Path, strict: bool = False, label_mode: str = "majority") -> ReadRecords:
    """Read class folders (with or without split folders above them); see the module docstring."""
    collector = Collector(NAME, root, strict)
    subdirs = _subdirs(root)
    splits = {n: split_name(n) for n in subdirs if split_name(n) and _class_id(n) is None}
    if splits:
        unknown = [n for n in subdirs if n not in splits]
        if unknown:
            raise ValueError(f"{root}: folder(s) {', '.join(unknown)} are neither split folders nor expected here "
                             f"(found split folders {', '.join(splits)})")
        for folder, split in splits.items():
            _read_classes(collector, root, root / folder, split)
    else:
        _read_classes(collector, root, root, None)
    return collector.records()


def _read_classes(collector: Collector, root: Path, folder: Path, split: str | None) -> None:
    classes = {n: _class_id(n) for n in _subdirs(folder)}
    unknown = sorted(n for n, c in classes.items() if c is None)
    if unknown:
        raise ValueError(f"{folder}: class folder(s) {', '.join(unknown)} match no expression; "
                         f"use one of the 8 expression names (or a synonym, or an id 0..7)")
    prefix = folder.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    for name, class_id in classes.items():
        class_dir = folder / name
        files = sorted(
            n for n, is_dir in scandir_names(class_dir).items()
            if not is_dir and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS and not n.startswith(".")
        )
        class_str = str(class_dir)
        for file in files:
            collector.n_found += 1
            collector.add(f"{class_str}/{file}", f"{prefix}{name}/{file}", expression=class_id, parsed=True,
                          split=split)
