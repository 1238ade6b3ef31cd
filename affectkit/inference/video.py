"""Batch prediction over image files, folders, globs and videos (``run_predict``), and the names it is built from.

Inputs are expanded by ``inputs``, videos read (every ``every_n`` frames) and annotated copies written by
``video_io``, boxes drawn by ``draw``, rows built and written (CSV/JSON) by ``outputs``; see ``outputs`` for the
row convention. An unreadable input gives a warning and an "error: <reason>" row, and the run goes on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from affectkit.inference.draw import draw_predictions
from affectkit.inference.inputs import IMAGE_EXTS, VIDEO_EXTS, InputWarning, expand_inputs, is_video
from affectkit.inference.outputs import ROW_FIELDS, output_format, prediction_row, write_rows
from affectkit.inference.predictor import Predictor, UnreadableImageError, read_image
from affectkit.inference.video_io import MAX_GIF_FRAMES, Annotator, iter_frames, video_fps, video_reader_name

# names that lived here before the split stay importable from here
__all__ = [
    "run_predict",
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "InputWarning",
    "expand_inputs",
    "is_video",
    "ROW_FIELDS",
    "prediction_row",
    "write_rows",
    "draw_predictions",
    "MAX_GIF_FRAMES",
    "iter_frames",
    "video_fps",
    "video_reader_name",
]


def run_predict(
    ckpt: str | Path | Predictor | None,
    inputs: Sequence[str | Path] | str | Path,
    out: str | Path | None = None,
    annotate: str | Path | None = None,
    detect: bool = True,
    backend: str = "torch",
    every_n: int = 10,
    batch_size: int = 32,
    threshold: float = 0.9,
    tta: bool = False,
    device: str = "cpu",
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """Predict every face in ``inputs`` (files, folders, globs, videos); return rows and write ``out``.

    ``ckpt`` is a ``.ckpt``/``.onnx`` path (``backend`` "torch" or "onnx"; an ``.onnx`` path implies onnx), a
    shipped model's name (None: the default, see ``affectkit models``) or a ready ``Predictor``. ``threshold`` is
    the face-detector confidence; ``detect=False`` uses whole images.
    ``annotate`` names a folder for annotated copies. Unreadable inputs give a warning and an error row.
    ``precision`` ("fp32" or "bf16") applies to the torch backend; ONNX runs its fp32 graph.
    """
    from tqdm.auto import tqdm

    if out is not None:
        output_format(out)  # fail before the work, not after
    if every_n < 1:
        raise ValueError(f"every_n must be >= 1, got {every_n}")
    predictor = _load_predictor(ckpt, backend, device, threshold, tta, batch_size, precision)
    annotator = Annotator(annotate)
    rows: list[dict[str, Any]] = []
    items = expand_inputs(inputs)
    images: list[str] = []

    def flush_images():
        rows.extend(_predict_images(predictor, images, detect, annotator))
        images.clear()

    for path, problem in tqdm(items, desc="predict", unit="file", disable=None):
        if problem is not None:
            rows.append(_error_row(path, problem))
            continue
        if is_video(path):
            flush_images()
            rows.extend(_predict_video(predictor, path, every_n, detect, batch_size, annotator))
        else:
            images.append(path)
            if len(images) >= batch_size:
                flush_images()
    flush_images()
    if out is not None:
        write_rows(rows, out)
    return rows


def _load_predictor(
    ckpt: str | Path | Predictor | None,
    backend: str,
    device: str,
    threshold: float,
    tta: bool,
    batch_size: int,
    precision: str,
) -> Predictor:
    """``ckpt`` itself when it is a ``Predictor``, else the model it names (an ``.onnx`` path implies onnx)."""
    if isinstance(ckpt, Predictor):
        return ckpt
    if str(ckpt).lower().endswith(".onnx"):
        backend = "onnx"
    return Predictor.load(
        ckpt,
        backend=backend,
        device=device,
        min_confidence=threshold,
        tta=tta,
        batch_size=batch_size,
        precision=precision,
    )


def _error_row(source: str, reason: str) -> dict[str, Any]:
    warnings.warn(f"{source}: {reason}", InputWarning, stacklevel=3)
    return prediction_row(source, 0, None, None, status=f"error: {reason}")


def _predict_images(predictor: Predictor, paths: list[str], detect: bool, annotator: Annotator) -> list[dict[str, Any]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    ok: list[tuple[str, np.ndarray]] = []
    for path in paths:
        try:
            ok.append((path, read_image(path)))
        except (ValueError, OSError) as e:  # UnreadableImageError is a ValueError
            rows[path] = [_error_row(path, _reason(e, path))]
    rows.update(_predict_frames(predictor, [(p, 0, None, rgb) for p, rgb in ok], detect, annotator.image))
    return [r for p in paths for r in rows[p]]


def _predict_frames(
    predictor: Predictor, frames: list[tuple[str, int, float | None, np.ndarray]], detect: bool, on_annotated=None
) -> dict[Any, list[dict[str, Any]]]:
    """Rows per (source) for images, or per (source, frame) key order preserved; one model batch."""
    out: dict[Any, list[dict[str, Any]]] = {}
    if not frames:
        return out
    faces = [predictor.find_faces(rgb, detect=detect) for _, _, _, rgb in frames]
    preds = predictor.predict_faces([f[3] for f in frames], faces)
    for (src, idx, t, rgb), ps in zip(frames, preds, strict=True):
        key = src if t is None else (src, idx)
        out[key] = (
            [prediction_row(src, idx, t, p) for p in ps]
            if ps
            else [prediction_row(src, idx, t, None, status="no_face")]
        )
        if on_annotated is not None:
            on_annotated(src, rgb, ps) if t is None else on_annotated(src, idx, t, rgb, ps)
    return out


def _predict_video(
    predictor: Predictor, path: str, every_n: int, detect: bool, batch_size: int, annotator: Annotator
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    drawn: list[Image.Image] = []
    keep = annotator.folder is not None

    def on_frame(src, idx, t, rgb, ps):
        if keep:
            drawn.append(draw_predictions(rgb, ps))

    chunk: list[tuple[str, int, float | None, np.ndarray]] = []
    try:
        for idx, t, rgb in iter_frames(path, every_n):
            chunk.append((path, idx, t, rgb))
            if len(chunk) >= batch_size:
                rows.extend(r for rs in _predict_frames(predictor, chunk, detect, on_frame).values() for r in rs)
                chunk = []
        rows.extend(r for rs in _predict_frames(predictor, chunk, detect, on_frame).values() for r in rs)
    except (UnreadableImageError, RuntimeError, ValueError, OSError) as e:
        rows.extend(r for rs in _predict_frames(predictor, chunk, detect, on_frame).values() for r in rs)
        rows.append(_error_row(path, _reason(e, path)))
    if not rows:
        rows.append(_error_row(path, "no frame could be read"))
    if keep and drawn:
        fps = video_fps(path) / every_n
        annotator.video(path, drawn, max(fps, 0.1) if math.isfinite(fps) else 1.0)
    return rows


def _reason(e: Exception, path: str) -> str:
    msg = str(e)
    prefix = f"{path}: "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg
