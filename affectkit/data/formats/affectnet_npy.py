"""AffectNet as released: ``images/<id>.jpg`` plus ``annotations/<id>_{exp,val,aro[,lnd]}.npy``.

The root may hold that layout directly (no split), or ``train_set/`` and ``val_set/`` folders each holding it
(the official release; splits "train" and "val"). The npy files hold 0-d arrays that may be strings ('3',
'0.25') or numbers; ``_lnd.npy`` holds 136 numbers (68 x,y pairs) as numbers or strings.

Speed: ~300k images means ~1.2M small npy files, so each folder is listed once with os.scandir (no per-file
stat) and npy headers are parsed once per distinct header (they repeat) instead of once per file.
"""

from __future__ import annotations

import ast
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from affectkit.data.formats._common import (
    DEFAULT_OPTIONS,
    IMAGE_EXTENSIONS,
    Collector,
    ReadOptions,
    ReadRecords,
    parse_landmarks,
    scandir_names,
)

NAME = "affectnet_npy"
SPLIT_FOLDERS = {"train_set": "train", "val_set": "val"}
_REQUIRED = ("exp", "val", "aro")
_IO_THREADS = min(8, 2 * (os.cpu_count() or 1))

_header_cache: dict[bytes, tuple[np.dtype, tuple[int, ...], bool]] = {}


def load_npy(path: str) -> np.ndarray:
    """np.load for the small npy files AffectNet ships, with the (repeating) header parse cached."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY" or len(data) < 10:
        raise ValueError("not a .npy file (bad magic bytes)")
    if data[6] == 1:
        start = 10
        header_len = int.from_bytes(data[8:10], "little")
    else:
        start = 12
        header_len = int.from_bytes(data[8:12], "little")
    header = data[start : start + header_len]
    parsed = _header_cache.get(header)
    if parsed is None:
        meta = ast.literal_eval(header.decode("latin1"))
        dtype = np.dtype(meta["descr"])
        if dtype.hasobject:
            raise ValueError("holds Python objects (pickled); refusing to unpickle")
        parsed = (dtype, tuple(meta["shape"]), bool(meta["fortran_order"]))
        if len(_header_cache) < 1024:
            _header_cache[header] = parsed
    dtype, shape, fortran = parsed
    count = int(np.prod(shape)) if shape else 1
    array = np.frombuffer(data, dtype=dtype, count=count, offset=start + header_len)
    return array.reshape(shape, order="F" if fortran else "C")


def looks_like(root: Path) -> bool:
    """True if root holds images/ + annotations/, or train_set/ / val_set/ folders that do."""
    if (root / "images").is_dir() and (root / "annotations").is_dir():
        return True
    return any((root / f / "images").is_dir() and (root / f / "annotations").is_dir() for f in SPLIT_FOLDERS)


DESCRIPTION = (
    "images/ and annotations/ folders (<id>_exp.npy, <id>_val.npy, <id>_aro.npy), "
    "or train_set/ and val_set/ holding them"
)


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read an AffectNet npy-layout dataset; see the module docstring and ``_common`` for the label rules."""
    collector = Collector(NAME, root, options.strict)
    parts: list[tuple[Path, str | None]] = [
        (root / f, s) for f, s in SPLIT_FOLDERS.items() if (root / f / "annotations").is_dir()
    ]
    if not parts:
        parts = [(root, None)]
    for folder, split in parts:
        _read_part(collector, root, folder, split)
    return collector.records()


def _load_id(image_id: str, annotations: set[str], ann_str: str) -> tuple[dict, tuple[str, str, str] | None]:
    """Raw npy values of one id, or the first (file, reason, category) problem; runs in worker threads."""
    values: dict = {}
    for kind in _REQUIRED:
        ann = f"{image_id}_{kind}.npy"
        if ann not in annotations:
            return values, (f"{ann_str}/{ann}", "missing annotation file", "missing annotation")
        try:
            values[kind] = load_npy(f"{ann_str}/{ann}")
        except (OSError, ValueError, SyntaxError) as err:
            return values, (f"{ann_str}/{ann}", f"unreadable annotation ({err})", "unreadable annotation")
    lnd = f"{image_id}_lnd.npy"
    if lnd in annotations:
        try:
            values["lnd"] = load_npy(f"{ann_str}/{lnd}")
        except (OSError, ValueError, SyntaxError) as err:
            values["lnd"] = err
    return values, None


def _read_part(collector: Collector, root: Path, folder: Path, split: str | None) -> None:
    prefix = folder.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    images = {}
    for name, is_dir in scandir_names(folder / "images").items():
        stem, dot, ext = name.rpartition(".")
        if dot and not is_dir and "." + ext.lower() in IMAGE_EXTENSIONS:
            images[stem] = name
    ann_dir = folder / "annotations"
    annotations = set(scandir_names(ann_dir))
    ann_ids = {n[: -len("_exp.npy")] for n in annotations if n.endswith("_exp.npy")}
    img_dir = str(folder / "images")
    ann_str = str(ann_dir)

    # Annotated ids without an image are problems too; sorted for a stable sample order.
    for image_id in sorted(ann_ids - images.keys()):
        collector.n_found += 1
        collector.problem(f"{ann_str}/{image_id}_exp.npy", "annotation without an image in images/", "missing image")

    ids = sorted(images)
    # File opens dominate on cold caches; threads overlap them (the GIL is released during I/O).
    with ThreadPoolExecutor(_IO_THREADS) as pool:
        load = partial(_load_id, annotations=annotations, ann_str=ann_str)
        results = pool.map(load, ids) if len(ids) > 256 else map(load, ids)
        for image_id, (values, problem) in zip(ids, results, strict=True):
            collector.n_found += 1
            if problem is not None:
                collector.problem(*problem)
                continue
            landmarks = None
            lnd = values.get("lnd")
            if lnd is not None:
                source = f"{ann_str}/{image_id}_lnd.npy"
                try:
                    if isinstance(lnd, Exception):
                        raise ValueError(str(lnd))
                    landmarks = parse_landmarks(lnd, source)
                except ValueError as err:
                    # Landmarks are optional: a bad file loses them, not the sample (unless strict).
                    collector.problem(source, f"unreadable landmarks ({err})", None)
            name = images[image_id]
            collector.add(
                f"{img_dir}/{name}",
                f"{prefix}images/{name}",
                expression=values["exp"],
                valence=values["val"],
                arousal=values["aro"],
                source=tuple(f"{ann_str}/{image_id}_{k}.npy" for k in _REQUIRED),  # type: ignore[arg-type]
                landmarks=landmarks,
                split=split,
            )
