"""Image decoding to HxWx3 uint8 RGB, and the bad-file policy.

Conventions:

- Colour modes: gray (L, 1) is replicated to 3 channels; alpha (LA, RGBA, PA, P with transparency) is
  composited on black, so fully transparent pixels become black whatever colour they store; CMYK, YCbCr, LAB
  and HSV are converted by Pillow; 16-bit gray (I;16*, and I as Pillow opens 16-bit PNGs) is scaled from
  0..65535 to 0..255 (``round(v / 257)``), not clipped. 16-bit RGB PNGs are reduced to 8 bit by Pillow.
- EXIF orientation is applied (``ImageOps.exif_transpose``) before cropping: boxes are in upright pixels.
- ``box = (x, y, w, h)`` is clamped to the image; a box that misses the image entirely is an error.
- Every decoding failure raises ``ImageError`` (a ValueError) naming the file and a short ``kind``:
  "missing file", "empty file", "not an image", "truncated", "corrupt", "decompression bomb".
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from affectkit.data.records import Sample

# File extensions read as images, by the dataset readers and by ``predict`` on folders alike.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"})
# Pillow's own default (~89.5 Mpx, about a 9459x9459 image): far above any face photo.
DEFAULT_MAX_PIXELS = 89_478_485
MAX_SCAN_WARNINGS = 20
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zlib.error, IndexError, TypeError, KeyError, MemoryError)
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


class ImageError(ValueError):
    """An image that cannot be used; ``path``, ``kind`` (short category) and ``reason`` say why."""

    def __init__(self, path: str | Path, reason: str, kind: str = "corrupt"):
        self.path, self.reason, self.kind = str(path), reason, kind
        super().__init__(f"{path}: {reason}")


def problem_text(image: object, e: Exception) -> str:
    """``"<file>: <reason>"`` for a file that failed to decode (an ``ImageError`` names its file already)."""
    return str(e) if isinstance(e, ImageError) and e.path == str(image) else f"{image}: {e}"


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("L", "1"):
        gray = np.asarray(im.convert("L"))
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N, I (16-bit PNGs), I;32...
        values = np.asarray(im).astype(np.float64)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.rint(np.asarray(im)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    elif mode in ("LA", "La", "PA", "RGBa", "RGBX"):
        im = im.convert("RGBA") if mode != "RGBX" else im.convert("RGB")
    elif mode != "RGBA":
        im = im.convert("RGB")
    if im.mode == "RGBA":
        rgba = np.asarray(im).astype(np.uint16)
        rgb = (rgba[:, :, :3] * rgba[:, :, 3:4] + 127) // 255  # composite on black, rounded
        return rgb.astype(np.uint8)
    return np.asarray(im)


def _array_to_rgb(array: np.ndarray, name: str = "array") -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ImageError(name, f"expected an HxW, HxWx3 or HxWx4 array, got shape {a.shape}", "corrupt")
    if a.dtype == np.uint16:
        a = np.rint(a / 257.0).astype(np.uint8)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ImageError(name, "float image holds NaN or inf", "corrupt")
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0  # floats in [0, 1] or already 0..255
        a = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        raise ImageError(name, f"unsupported array dtype {a.dtype}", "corrupt")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        a = ((a[:, :, :3].astype(np.uint16) * a[:, :, 3:4] + 127) // 255).astype(np.uint8)
    return a


def box_bounds(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` rounded and clamped to the image as ``(x0, y0, x1, y1)``; None when nothing is left."""
    x, y, w, h = (int(round(float(v))) for v in box)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _crop(array: np.ndarray, box: Sequence[float] | None, name: str) -> np.ndarray:
    if box is None:
        return array
    height, width = array.shape[:2]
    bounds = box_bounds(box, width, height)
    if bounds is None:
        raise ImageError(name, f"face box {tuple(box)} lies outside the {width}x{height} image", "corrupt")
    x0, y0, x1, y1 = bounds
    return array[y0:y1, x0:x1]


def _target_hw(target_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if target_size is None:
        return None
    if isinstance(target_size, (int, np.integer)):
        return int(target_size), int(target_size)
    w, h = target_size
    return int(w), int(h)


def _open(src, max_pixels: int, name: str | None = None) -> Image.Image:
    """Open lazily (header only) and enforce the pixel limit; Pillow's bomb warning/error become ImageError.

    ``src`` is a path or a binary file object (then ``name`` labels it in messages)."""
    path = name or (os.fspath(src) if not hasattr(src, "read") else "upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(src)
    except FileNotFoundError as err:
        raise ImageError(path, "file not found", "missing file") from err
    except IsADirectoryError as err:
        raise ImageError(path, "is a folder, not an image file", "not an image") from err
    except Image.DecompressionBombError as err:
        raise ImageError(path, f"decompression bomb: {err}", "decompression bomb") from err
    except UnidentifiedImageError as err:
        try:
            empty = (src.seek(0, 2) == 0) if hasattr(src, "read") else os.path.getsize(src) == 0
        except OSError:
            empty = False
        if empty:
            raise ImageError(path, "empty file (0 bytes)", "empty file") from err
        raise ImageError(path, "not an image (format not recognised)", "not an image") from err
    except _DECODE_ERRORS as err:
        raise _decode_error(path, err, "header") from err
    width, height = im.size
    if width * height > max_pixels:
        im.close()
        raise ImageError(
            path,
            f"decompression bomb: {width}x{height} = {width * height} pixels is over the limit of {max_pixels}",
            "decompression bomb",
        )
    if width == 0 or height == 0:
        im.close()
        raise ImageError(path, f"image has no pixels ({width}x{height})", "corrupt")
    return im


def _decode_error(path: str, err: BaseException, part: str) -> ImageError:
    text = str(err) or type(err).__name__
    truncated = isinstance(err, EOFError) or any(w in text.lower() for w in ("truncated", "broken data stream"))
    kind = "truncated" if truncated else "corrupt"
    return ImageError(path, f"{kind} image {part} ({text})", kind)


def _decode(im: Image.Image, path: str) -> None:
    # Pillow may have been told elsewhere to accept truncated files; a cut file must fail here. The global is
    # only written in that case, so threads decoding in parallel normally never touch it.
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    if previous:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        im.load()
    except _DECODE_ERRORS as err:
        raise _decode_error(path, err, "data") from err
    finally:
        if previous:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def load_image(
    src,
    box: Sequence[float] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target_size: int | Sequence[int] | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode an image file (a path or a binary file object, labelled ``name`` in errors), or take an array, as
    an HxWx3 uint8 RGB array, cropped to ``box``.

    ``box`` is ``(x, y, w, h)`` in upright (EXIF-applied) pixels, clamped to the image. ``target_size`` (int
    or ``(w, h)``) is only a speed hint: a JPEG much larger than it is decoded at 1/2, 1/4 or 1/8 scale
    (Pillow's ``draft``), never below ``target_size``; the caller still resizes. Raises ``ImageError``.
    """
    if isinstance(src, np.ndarray):
        return np.ascontiguousarray(_crop(_array_to_rgb(src), box, "array"))
    path = name or (os.fspath(src) if not hasattr(src, "read") else "upload")
    im = _open(src, max_pixels, path)
    try:
        scale_x = scale_y = 1.0
        target = _target_hw(target_size)
        if target is not None and im.format == "JPEG":
            full_w, full_h = im.size
            orientation = _exif_orientation(im)
            bw, bh = (full_w, full_h) if box is None else (max(box[2], 1), max(box[3], 1))
            if orientation in _SWAPS_AXES:  # box/target are upright; the draft request is in stored pixels
                bw, bh = bh, bw
                target = (target[1], target[0])
            want = (max(1, int(target[0] * full_w / bw)), max(1, int(target[1] * full_h / bh)))
            im.draft("RGB", want)
            scale_x, scale_y = im.size[0] / full_w, im.size[1] / full_h
            if orientation in _SWAPS_AXES:
                scale_x, scale_y = scale_y, scale_x
        _decode(im, path)
        try:
            upright = ImageOps.exif_transpose(im)
        except _DECODE_ERRORS:
            upright = im  # a broken EXIF block should not lose an otherwise good image
        array = _to_rgb_array(upright)
    finally:
        im.close()
    if box is not None and (scale_x != 1.0 or scale_y != 1.0):
        box = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
    return np.ascontiguousarray(_crop(array, box, path))


def _exif_orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except _DECODE_ERRORS:
        return 1


def check_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Cheaply decode a file to prove it is usable; returns its upright ``(width, height)``.

    JPEGs are decoded at 1/8 scale (still reads every byte, so truncation is caught); other formats fully.
    Raises ``ImageError``.
    """
    path = os.fspath(path)
    im = _open(path, max_pixels)
    try:
        size = im.size
        if _exif_orientation(im) in _SWAPS_AXES:
            size = (size[1], size[0])
        if im.format == "JPEG":
            im.draft(im.mode if im.mode in ("L", "RGB") else "RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        _decode(im, path)
    finally:
        im.close()
    return size


def scan_images(
    samples: Iterable[Sample],
    strict: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Split samples into those whose image decodes and ``(file, reason)`` problems for those that don't.

    Each distinct file is checked once (``check_image``, threads: Pillow decodes without the GIL). Warns
    once per bad file, for the first ``MAX_SCAN_WARNINGS`` files, then once with the remaining count.
    ``strict=True`` raises the first ``ImageError`` instead. Array images are checked by shape only. The
    problem reason starts with the kind (e.g. "truncated: ...") so summaries can count by kind.
    """
    samples = list(samples)
    paths = sorted({os.fspath(s.image) for s in samples if not isinstance(s.image, np.ndarray)})
    bad: dict[str, ImageError] = {}

    def check(path: str) -> ImageError | None:
        try:
            check_image(path, max_pixels)
        except ImageError as err:
            return err
        return None

    n_workers = workers or min(8, (os.cpu_count() or 1) * 2)
    if len(paths) < 64 or n_workers == 1:
        results = [check(p) for p in paths]
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            results = list(pool.map(check, paths))
    for path, err in zip(paths, results, strict=True):
        if err is not None:
            if strict:
                raise err
            bad[path] = err

    ok: list[Sample] = []
    for s in samples:
        if isinstance(s.image, np.ndarray):
            try:
                _array_to_rgb(s.image, s.key or "array")
            except ImageError as err:
                if strict:
                    raise
                bad[s.key or f"array #{id(s)}"] = err
                continue
            ok.append(s)
        elif os.fspath(s.image) not in bad:
            ok.append(s)
    for i, problem in enumerate(bad.values()):
        if i < MAX_SCAN_WARNINGS:
            warnings.warn(f"skipping bad image {problem}", stacklevel=2)
    if len(bad) > MAX_SCAN_WARNINGS:
        warnings.warn(f"{len(bad) - MAX_SCAN_WARNINGS} more bad images skipped", stacklevel=2)
    problems = [(path, f"{err.kind}: {err.reason}") for path, err in bad.items()]
    return ok, problems
