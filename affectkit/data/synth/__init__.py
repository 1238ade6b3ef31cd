"""Procedurally drawn faces with expression, valence/arousal and landmark labels: the built-in demo dataset.

Conventions
-----------
* Expression ids are AffectNet's (0 Neutral .. 7 Contempt, see :mod:`affectkit.labels`), drawn uniformly.
* Valence/arousal are sampled around a per-class prototype on the circumplex (spread ``VA_SPREAD``) and clipped
  to [-1, 1].
* The drawing encodes both: continuous cues (mouth-corner curvature follows valence; mouth opening, eye opening
  and brow height follow arousal) plus class markers that separate classes with similar valence/arousal
  (anger: V-shaped brows, narrowed eyes, furrow lines; fear: raised inner brows drawn together, wide eyes,
  stretched mouth; surprise: high round brows, "O" mouth; disgust: nose wrinkles, raised one-sided upper lip;
  contempt: one-sided mouth-corner raise; sad: inner brows raised, down-turned mouth; happy: upturned mouth,
  cheek folds, narrowed eyes, optional teeth; neutral: flat).
* Landmarks follow the iBUG 68-point order, in pixels of the returned image, (x, y) with the origin at the
  top-left pixel corner. Point 0 (the subject's right jaw) is on the image's left.
* Every face is a pure function of ``(seed, index)``: its RNG is ``np.random.default_rng([seed, index])``, so
  output bytes do not depend on the number of worker processes.

On disk (:func:`generate`) the layout is AffectNet's: ``images/<id>.jpg`` and
``annotations/<id>_{exp,val,aro,lnd}.npy`` with ``<id>`` the zero-padded index, plus ``synth.json``.

Modules: :mod:`.params` (labels and nuisance of one face, expression geometry), :mod:`.shapes` (primitives and
landmarks in face units), :mod:`.draw` (:func:`render_face`); this module writes datasets.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from affectkit.data.synth.draw import render_face
from affectkit.data.synth.params import (
    VA_PROTOTYPES,
    VA_SPREAD,
    FaceParams,
    face_params,
    sample_params,
)
from affectkit.labels import EXPRESSIONS

__all__ = [
    "GENERATOR_VERSION",
    "JPEG_QUALITY",
    "VA_PROTOTYPES",
    "VA_SPREAD",
    "FaceParams",
    "face_params",
    "generate",
    "render_face",
    "sample_params",
    "synth_arrays",
]

GENERATOR_VERSION = 1
JPEG_QUALITY = 95


def synth_arrays(
    n: int, seed: int = 0, size: int = 64, difficulty: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """In-memory faces: ``(images uint8 (n, size, size, 3), expression int64 (n,), valence float32 (n,),
    arousal float32 (n,))``. Face ``i`` is the same face :func:`generate` writes as index ``i`` (before JPEG)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    images = np.empty((n, size, size, 3), np.uint8)
    expr = np.empty(n, np.int64)
    val = np.empty(n, np.float32)
    aro = np.empty(n, np.float32)
    for i in range(n):
        p = face_params(seed, i, difficulty)
        images[i], _ = render_face(p, size)
        expr[i], val[i], aro[i] = p.expression, p.valence, p.arousal
    return images, expr, val, aro


def _id_width(n: int) -> int:
    return max(6, len(str(max(n - 1, 0))))


def _write_range(out_dir: str, seed: int, size: int, n: int, start: int, stop: int, difficulty: float = 1.0) -> int:
    out = Path(out_dir)
    w = _id_width(n)
    for i in range(start, stop):
        p = face_params(seed, i, difficulty)
        img, lmk = render_face(p, size)
        key = f"{i:0{w}d}"
        Image.fromarray(img).save(out / "images" / f"{key}.jpg", quality=JPEG_QUALITY, subsampling=2, optimize=False)
        ann = out / "annotations"
        np.save(ann / f"{key}_exp.npy", np.int64(p.expression))
        np.save(ann / f"{key}_val.npy", np.float64(p.valence))
        np.save(ann / f"{key}_aro.npy", np.float64(p.arousal))
        np.save(ann / f"{key}_lnd.npy", lmk.astype(np.float64).reshape(-1))
    return stop - start


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects container/taskset limits, unlike os.cpu_count()
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _check_target(out: Path, marker: Path, meta: dict) -> None:
    """Refuse a file, or a non-empty directory that is not a synth output with the same parameters."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not marker.is_file():
            raise FileExistsError(
                f"{out}: directory is not empty and holds no synth.json; choose an empty or new directory"
            )
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError) as e:
            raise FileExistsError(f"{marker}: unreadable ({e}); refusing to overwrite {out}") from e
        if {k: old.get(k) for k in meta} != meta:
            raise FileExistsError(
                f"{out}: holds a synth dataset with different parameters "
                f"({ {k: old.get(k) for k in ('n', 'seed', 'size', 'version')} }); "
                "remove it or choose another directory"
            )


def _write_all(out: Path, n: int, seed: int, size: int, difficulty: float, workers: int | None, progress: bool) -> None:
    """Write the ``n`` faces in chunks over ``workers`` processes (None: the usable CPUs; 1: this process)."""
    workers = _usable_cpus() if workers is None else max(1, int(workers))
    chunk = max(16, min(256, -(-n // (workers * 4))))
    ranges = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="synth", unit="img")
        except ImportError:  # pragma: no cover - tqdm is a dependency
            bar = None
    if workers == 1 or len(ranges) == 1:
        for s, e in ranges:
            done = _write_range(str(out), seed, size, n, s, e, difficulty)
            if bar is not None:
                bar.update(done)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(ranges))) as ex:
            futs = [ex.submit(_write_range, str(out), seed, size, n, s, e, difficulty) for s, e in ranges]
            for f in futs:
                done = f.result()
                if bar is not None:
                    bar.update(done)
    if bar is not None:
        bar.close()


def generate(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    size: int = 128,
    workers: int | None = None,
    progress: bool = False,
    difficulty: float = 1.0,
) -> Path:
    """Write ``n`` synthetic faces in the AffectNet layout under ``out_dir`` and return its path.

    ``images/<id>.jpg`` (JPEG quality 95), ``annotations/<id>_exp.npy`` (int expression id),
    ``<id>_val.npy`` / ``<id>_aro.npy`` (float in [-1, 1]), ``<id>_lnd.npy`` (136 floats x1, y1, x2, y2 ...
    of the iBUG 68 landmarks in pixels), ``<id>`` the zero-padded index (at least 6 digits), plus ``synth.json``
    (n, seed, size, difficulty, generator version, complete). Bytes depend only on (n, seed, size, difficulty),
    not on ``workers``
    (default: the CPUs this process may use). Refuses a non-empty directory unless it is a previous synth
    output with the same n, seed and size, which is overwritten.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    out = Path(out_dir)
    meta = {
        "generator": "affectkit.synth",
        "version": GENERATOR_VERSION,
        "n": int(n),
        "seed": int(seed),
        "size": int(size),
        "difficulty": float(difficulty),
    }
    marker = out / "synth.json"
    _check_target(out, marker, meta)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    # Written first with complete=false so an interrupted run is still recognised as ours and can be redone.
    marker.write_text(json.dumps({**meta, "complete": False}, indent=1))

    _write_all(out, n, seed, size, difficulty, workers, progress)
    marker.write_text(json.dumps({**meta, "complete": True, "expressions": list(EXPRESSIONS)}, indent=1))
    return out
