"""Decoded-image store: every image decoded and resized once into a memory-mapped uint8 array.

Training then reads batches with one fancy-index into the map instead of decoding JPEGs every epoch. Each image
is made by the model's :class:`~affectkit.preprocess.Preprocess` (``to_array``), the same call ``Predictor`` makes
on a face crop, so a crop given as-is at inference and the same image from the store are the same pixels. A store
is keyed by a hash of the source files (path, size, mtime), the crop boxes and the contract's pixel rules (size,
colour mode, interpolation), so a change to any of them makes a new store instead of serving stale pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from affectkit.data.images import problem_text
from affectkit.data.records import Sample
from affectkit.preprocess import Preprocess

STORE_VERSION = 2  # 2: pixels made by Preprocess.to_array (exact resize, no JPEG draft decoding)


def default_cache_dir() -> Path:
    return Path(os.environ.get("AFFECTKIT_CACHE", Path.home() / ".cache" / "affectkit"))


def as_preprocess(size_or_preprocess: int | Preprocess) -> Preprocess:
    """A bare pixel size means the default contract at that size (RGB, bilinear)."""
    if isinstance(size_or_preprocess, Preprocess):
        return size_or_preprocess
    return Preprocess(input_size=int(size_or_preprocess))


def decode_resized(sample: Sample, preprocess: int | Preprocess) -> np.ndarray:
    """One sample's model input (S, S, 3) uint8: its image cropped to its box, by the contract's rules."""
    return as_preprocess(preprocess).to_array(sample.image, box=sample.box)


def source_fingerprint(samples: list[Sample], preprocess: int | Preprocess) -> str:
    h = hashlib.sha256(f"v{STORE_VERSION}:{as_preprocess(preprocess).store_key()}".encode())
    for s in samples:
        if isinstance(s.image, np.ndarray):
            h.update(hashlib.sha1(np.ascontiguousarray(s.image).tobytes()).digest())
        else:
            try:
                st = os.stat(s.image)
                h.update(f"{os.path.abspath(s.image)}|{st.st_size}|{st.st_mtime_ns}".encode())
            except OSError:
                h.update(f"{s.image}|missing".encode())
        h.update(repr(s.box).encode())
    return h.hexdigest()[:20]


def _decode_chunk(args):
    path, samples, start, preprocess = args
    arr = np.lib.format.open_memmap(path, mode="r+")
    bad = []
    for j, s in enumerate(samples):
        try:
            arr[start + j] = decode_resized(s, preprocess)
        except Exception as e:  # one bad file never stops the build: it is marked and reported
            bad.append((start + j, problem_text(s.image, e)))
    arr.flush()
    del arr
    return bad


class ImageStore:
    """A read-only (N, S, S, 3) uint8 array plus an ``ok`` mask of images that decoded."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        self.size = meta["size"]
        self.ok = np.asarray(meta["ok"], dtype=bool)
        self.problems = [tuple(p) for p in meta.get("problems", [])]
        self.images = np.load(self.folder / "images.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.ok)


def build_store(
    samples: list[Sample],
    size: int | Preprocess,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    strict: bool = False,
    progress: bool = False,
    decode_device: str | None = None,
    warn: bool = True,
) -> ImageStore:
    """Return the store for these samples made by ``size`` (a Preprocess, or a pixel size for the default
    RGB contract), building it when absent or stale.

    ``decode_device`` (e.g. ``"cuda"``) decodes plain JPEGs on that torch device (see ``device_decode``); the
    default decodes with Pillow in ``workers`` processes. Either decoder's store serves both. ``warn`` names the
    files the store left out (every use, not only the build); ``strict`` makes them an error."""
    if decode_device:
        from affectkit.data.device_decode import check_device

        check_device(decode_device)  # fail before any work
    preprocess = as_preprocess(size)
    size = preprocess.input_size
    folder = Path(cache_dir or default_cache_dir()) / f"{source_fingerprint(samples, preprocess)}-{size}px"
    if (folder / "meta.json").is_file():
        store = ImageStore(folder)
        warn_problems(store, strict, warn)
        return store
    # Built in a private folder renamed into place when complete: concurrent builders (DDP ranks, nodes on a
    # shared filesystem) never see or clobber a half-written store, and a killed build leaves nothing it serves.
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _build_into(work, samples, preprocess, workers, strict, progress, decode_device)
        try:
            os.rename(work, folder)
        except OSError:
            if not (folder / "meta.json").is_file():
                if folder.is_dir():  # an empty or incomplete folder left by an older version: replace it
                    shutil.rmtree(folder, ignore_errors=True)
                os.rename(work, folder)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)  # another process won the race: use its store
    store = ImageStore(folder)
    warn_problems(store, strict, warn)
    return store


def _build_into(
    folder: Path,
    samples: list[Sample],
    preprocess: Preprocess,
    workers: int | None,
    strict: bool,
    progress: bool,
    decode_device: str | None = None,
) -> None:
    size = preprocess.input_size
    tmp = folder / "images.npy"
    n = len(samples)
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    del arr
    if decode_device:
        from affectkit.data.device_decode import fill_store_on_device

        bad = fill_store_on_device(str(tmp), samples, preprocess, decode_device, progress)
    else:
        workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
        chunk = max(64, -(-n // (workers * 8))) if n else 1
        jobs = [(str(tmp), samples[i : i + chunk], i, preprocess) for i in range(0, n, chunk)]
        if workers > 1 and n > 256 and not any(isinstance(s.image, np.ndarray) for s in samples[:1]):
            with ProcessPoolExecutor(workers) as ex:
                it = list(
                    _progress(ex.map(_decode_chunk, jobs), len(jobs), progress, f"caching {n} images at {size}px")
                )
        else:
            it = [_decode_chunk(j) for j in _progress(jobs, len(jobs), progress, f"caching {n} images at {size}px")]
        bad = [b for part in it for b in part]
    if bad and strict:
        raise _undecodable(bad)
    ok = np.ones(n, dtype=bool)
    ok[[i for i, _ in bad]] = False
    meta = {
        "size": size,
        "n": n,
        "ok": ok.tolist(),
        "problems": [[s, m] for s, m in bad],
        "preprocess": preprocess.to_dict(),
    }
    (folder / "meta.json").write_text(json.dumps(meta))


def _undecodable(bad: list) -> ValueError:
    """The error a strict run stops with when a store could not decode some of its images."""
    return ValueError(
        f"{len(bad)} image(s) could not be decoded, first: {bad[0][1]}: fix or remove them "
        "(without strict they are skipped with a warning)"
    )


def warn_problems(store: ImageStore, strict: bool = False, warn: bool = True) -> None:
    """Name the files a store left out, every time it is used (a cached store skips them silently otherwise)."""
    bad = store.problems
    if bad and strict:
        raise _undecodable(bad)
    if not warn:
        return
    for _, msg in bad[:20]:
        warnings.warn(f"skipping unreadable image {msg}", stacklevel=3)
    if len(bad) > 20:
        warnings.warn(f"... and {len(bad) - 20} more unreadable images", stacklevel=3)


def _progress(it, total, enabled, desc):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="chunk")
