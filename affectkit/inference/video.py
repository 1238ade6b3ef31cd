"""Batch prediction over image files, folders, globs and videos: rows, CSV/JSON output, annotated copies.

Row convention (one per face; see ``ROW_FIELDS``): ``source`` path, ``frame`` (0 for images), ``time_s`` (frame
time in seconds for videos, None for images), box ``x1, y1, x2, y2`` in pixels, detector ``score``,
``expression``, ``prob_<Name>`` for the 8 expressions, ``valence``, ``arousal`` and ``status``: "ok",
"no_face" (other fields empty) or "error: <reason>" (unreadable input; a warning names it and the run goes on).

Videos are sampled every ``every_n`` frames. Readers: animated GIFs with Pillow; other formats with OpenCV
(``cv2``) if installed, else imageio with its pyav or ffmpeg plugin if installed, else an error row saying so.
"""
from __future__ import annotations

import csv
import glob
import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from affectkit.data.images import IMAGE_EXTENSIONS
from affectkit.labels import EXPRESSIONS
from affectkit.inference.predictor import FacePrediction, Predictor, UnreadableImageError, read_image

IMAGE_EXTS = IMAGE_EXTENSIONS
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".gif"}
ROW_FIELDS = (["source", "frame", "time_s", "x1", "y1", "x2", "y2", "score", "expression"]
              + [f"prob_{n}" for n in EXPRESSIONS] + ["valence", "arousal", "status"])
MAX_GIF_FRAMES = 300  # annotated videos written as GIF (no OpenCV) beyond this become PNG frames
_COLOURS = ["#9e9e9e", "#ffca28", "#42a5f5", "#ab47bc", "#7e57c2", "#66bb6a", "#ef5350", "#8d6e63"]


class InputWarning(UserWarning):
    """An input that was skipped or only partly read; the message names it."""


# ---- inputs -------------------------------------------------------------------------------------
def expand_inputs(inputs: Sequence[str | Path]) -> list[tuple[str, str | None]]:
    """(path, problem) pairs: folders (recursive, sorted, image and video files), globs and files, in order.

    ``problem`` is None for usable paths, else a reason (missing file, glob with no match).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    out: list[tuple[str, str | None]] = []
    for item in inputs:
        s = str(item)
        p = Path(s)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            if not files:
                out.append((s, "folder holds no image or video files"))
            out.extend((str(f), None) for f in files)
        elif p.is_file():
            out.append((s, None))
        elif glob.has_magic(s):
            files = sorted(f for f in glob.glob(s, recursive=True) if Path(f).is_file())
            if not files:
                out.append((s, "no file matches this pattern"))
            out.extend((f, None) for f in files)
        else:
            out.append((s, "no such file or folder"))
    return out


def is_video(path: str | Path) -> bool:
    """Video by extension; a GIF counts only when it has several frames."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".gif":
        try:
            with Image.open(p) as im:
                return getattr(im, "n_frames", 1) > 1
        except Exception:
            return False
    return ext in VIDEO_EXTS


def video_reader_name() -> str | None:
    """The reader used for non-GIF videos: "cv2", "imageio-pyav", "imageio-ffmpeg" or None."""
    import importlib.util as u

    if u.find_spec("cv2"):
        return "cv2"
    if u.find_spec("imageio"):
        if u.find_spec("av"):
            return "imageio-pyav"
        if u.find_spec("imageio_ffmpeg"):
            return "imageio-ffmpeg"
    return None


def iter_frames(path: str | Path, every_n: int = 10) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, time in s, HxWx3 uint8 RGB) for frames 0, every_n, 2*every_n, ... of a video."""
    if every_n < 1:
        raise ValueError(f"every_n must be >= 1, got {every_n}")
    path = Path(path)
    if path.suffix.lower() == ".gif":
        yield from _gif_frames(path, every_n)
        return
    reader = video_reader_name()
    if reader == "cv2":
        yield from _cv2_frames(path, every_n)
    elif reader is not None:
        yield from _imageio_frames(path, every_n, "pyav" if reader == "imageio-pyav" else "FFMPEG")
    else:
        raise RuntimeError(f"{path}: no video reader installed (install opencv-python-headless, or imageio with "
                           f"av or imageio-ffmpeg); animated GIFs work without one")


def video_fps(path: str | Path) -> float:
    """Frames per second of a video (GIF: from its first frame duration; 25 when unknown)."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        with Image.open(path) as im:
            d = im.info.get("duration") or 40
        return 1000.0 / float(d)
    if video_reader_name() == "cv2":
        import cv2

        cap = cv2.VideoCapture(str(path))
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        return float(fps) if fps and fps > 0 else 25.0
    return 25.0


def _gif_frames(path: Path, every_n: int):
    try:
        im = Image.open(path)
    except Exception as e:
        raise UnreadableImageError(f"{path}: not a readable animation ({e})") from e
    with im:
        t_ms = 0.0
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            if i % every_n == 0:
                yield i, t_ms / 1000.0, np.asarray(im.convert("RGB"), dtype=np.uint8)
            t_ms += float(im.info.get("duration") or 40)


def _cv2_frames(path: Path, every_n: int):
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UnreadableImageError(f"{path}: OpenCV cannot open this video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    try:
        i = 0
        while True:
            if i % every_n == 0:
                ok, frame = cap.read()
                if not ok:
                    break
                yield i, i / fps, np.ascontiguousarray(frame[:, :, ::-1])
            elif not cap.grab():  # skip without decoding to RGB
                break
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise UnreadableImageError(f"{path}: OpenCV read no frame from this video")


def _imageio_frames(path: Path, every_n: int, plugin: str):
    import imageio.v3 as iio

    try:
        fps = float(iio.immeta(path, plugin=plugin).get("fps") or 25.0)
        for i, frame in enumerate(iio.imiter(path, plugin=plugin)):
            if i % every_n == 0:
                yield i, i / fps, np.ascontiguousarray(np.asarray(frame)[:, :, :3], dtype=np.uint8)
    except (OSError, ValueError, RuntimeError) as e:
        raise UnreadableImageError(f"{path}: not a readable video ({e})") from e


# ---- rows ---------------------------------------------------------------------------------------
def prediction_row(source: str, frame: int, time_s: float | None, pred: FacePrediction | None,
                   status: str = "ok") -> dict[str, Any]:
    """One output row (see module docstring); ``pred=None`` gives an empty row with ``status``."""
    row: dict[str, Any] = {k: None for k in ROW_FIELDS}
    row.update(source=source, frame=frame, time_s=None if time_s is None else round(float(time_s), 4),
               status=status)
    if pred is None:
        row["expression"] = ""
        return row
    # a head the model was not trained for stays empty (None): no number that looks like a measurement
    row.update(x1=round(pred.box[0], 2), y1=round(pred.box[1], 2), x2=round(pred.box[2], 2),
               y2=round(pred.box[3], 2), score=round(pred.score, 6), expression=pred.expression or "",
               valence=_round(pred.valence), arousal=_round(pred.arousal))
    for name in EXPRESSIONS:
        row[f"prob_{name}"] = _round(pred.probabilities.get(name))
    return row


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 6)


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> Path:
    """Write rows as CSV (``.csv``) or a JSON list (``.json``), by extension."""
    out = Path(out)
    fmt = _output_format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(ROW_FIELDS), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in ROW_FIELDS})
    else:
        out.write_text(json.dumps(rows, indent=1) + "\n")
    return out


def _output_format(out: Path) -> str:
    ext = out.suffix.lower()
    if ext not in (".csv", ".json"):
        raise ValueError(f"{out}: output must end in .csv or .json")
    return ext[1:]


# ---- drawing ------------------------------------------------------------------------------------
def draw_predictions(rgb: np.ndarray, preds: Sequence[FacePrediction]) -> Image.Image:
    """A copy of the image with each face boxed and labelled (expression, probability, valence, arousal)."""
    img = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(img)
    size = max(12, int(min(img.size) / 30))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    width = max(2, int(min(img.size) / 200))
    for p in preds:
        colour = _COLOURS[(p.expression_id or 0) % len(_COLOURS)]
        x1, y1, x2, y2 = p.box
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        lines = [f"{p.expression} {p.probabilities[p.expression]:.2f}"] if p.expression else []
        va = [f"{k} {v:+.2f}" for k, v in (("V", p.valence), ("A", p.arousal)) if v is not None]
        if va:
            lines.append(" ".join(va))
        text = "\n".join(lines) or "face"
        tb = draw.multiline_textbbox((0, 0), text, font=font)
        tw, th = tb[2] - tb[0] + 6, tb[3] - tb[1] + 6
        ty = y1 - th if y1 - th >= 0 else y2
        draw.rectangle([x1, ty, x1 + tw, ty + th], fill=colour)
        draw.multiline_text((x1 + 3, ty + 2), text, fill="black", font=font)
    return img


class _Annotator:
    """Writes annotated copies under one folder, with unique names."""

    def __init__(self, folder: str | Path | None):
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._used: set[str] = set()

    def name(self, source: str, suffix: str) -> Path:
        stem = Path(source).stem or "input"
        cand, k = stem + suffix, 1
        while cand in self._used:
            cand, k = f"{stem}_{k}{suffix}", k + 1
        self._used.add(cand)
        return self.folder / cand

    def image(self, source: str, rgb: np.ndarray, preds: Sequence[FacePrediction]) -> None:
        if self.folder is None:
            return
        ext = Path(source).suffix.lower()
        ext = ext if ext in (".jpg", ".jpeg", ".png", ".bmp", ".webp") else ".png"
        draw_predictions(rgb, preds).save(self.name(source, ext))

    def video(self, source: str, frames: list[Image.Image], fps: float) -> Path | None:
        if self.folder is None or not frames:
            return None
        if video_reader_name() == "cv2":
            import cv2

            out = self.name(source, "_annotated.mp4")
            w, h = frames[0].size
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            for f in frames:
                writer.write(np.asarray(f)[:, :, ::-1])
            writer.release()
            return out
        if len(frames) <= MAX_GIF_FRAMES:
            out = self.name(source, "_annotated.gif")
            frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
            return out
        folder = self.name(source, "_frames")
        folder.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(frames):
            f.save(folder / f"{i:06d}.png")
        return folder


# ---- the run ------------------------------------------------------------------------------------
def run_predict(ckpt: str | Path | Predictor, inputs: Sequence[str | Path] | str | Path, out: str | Path | None = None,
                annotate: str | Path | None = None, detect: bool = True, backend: str = "torch", every_n: int = 10,
                batch_size: int = 32, threshold: float = 0.9, tta: bool = False,
                device: str = "cpu", precision: str = "fp32") -> list[dict[str, Any]]:
    """Predict every face in ``inputs`` (files, folders, globs, videos); return rows and write ``out``.

    ``ckpt`` is a ``.ckpt``/``.onnx`` path (``backend`` "torch" or "onnx"; an ``.onnx`` path implies onnx) or a
    ready ``Predictor``. ``threshold`` is the face-detector confidence; ``detect=False`` uses whole images.
    ``annotate`` names a folder for annotated copies. Unreadable inputs give a warning and an error row.
    ``precision`` ("fp32" or "bf16") applies to the torch backend; ONNX runs its fp32 graph.
    """
    from tqdm.auto import tqdm

    if out is not None:
        _output_format(Path(out))  # fail before the work, not after
    if every_n < 1:
        raise ValueError(f"every_n must be >= 1, got {every_n}")
    if isinstance(ckpt, Predictor):
        predictor = ckpt
    else:
        if str(ckpt).lower().endswith(".onnx"):
            backend = "onnx"
        predictor = Predictor.load(ckpt, backend=backend, device=device, min_confidence=threshold, tta=tta,
                                   batch_size=batch_size, precision=precision)
    annotator = _Annotator(annotate)
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


def _error_row(source: str, reason: str) -> dict[str, Any]:
    warnings.warn(f"{source}: {reason}", InputWarning, stacklevel=3)
    return prediction_row(source, 0, None, None, status=f"error: {reason}")


def _predict_images(predictor: Predictor, paths: list[str], detect: bool,
                    annotator: _Annotator) -> list[dict[str, Any]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    ok: list[tuple[str, np.ndarray]] = []
    for path in paths:
        try:
            ok.append((path, read_image(path)))
        except (ValueError, OSError) as e:  # UnreadableImageError is a ValueError
            rows[path] = [_error_row(path, _reason(e, path))]
    rows.update(_predict_frames(predictor, [(p, 0, None, rgb) for p, rgb in ok], detect, annotator.image))
    return [r for p in paths for r in rows[p]]


def _predict_frames(predictor: Predictor, frames: list[tuple[str, int, float | None, np.ndarray]], detect: bool,
                    on_annotated=None) -> dict[Any, list[dict[str, Any]]]:
    """Rows per (source) for images, or per (source, frame) key order preserved; one model batch."""
    out: dict[Any, list[dict[str, Any]]] = {}
    if not frames:
        return out
    faces = [predictor.find_faces(rgb, detect=detect) for _, _, _, rgb in frames]
    preds = predictor.predict_faces([f[3] for f in frames], faces)
    for (src, idx, t, rgb), ps in zip(frames, preds):
        key = src if t is None else (src, idx)
        out[key] = ([prediction_row(src, idx, t, p) for p in ps] if ps
                    else [prediction_row(src, idx, t, None, status="no_face")])
        if on_annotated is not None:
            on_annotated(src, rgb, ps) if t is None else on_annotated(src, idx, t, rgb, ps)
    return out


def _predict_video(predictor: Predictor, path: str, every_n: int, detect: bool, batch_size: int,
                   annotator: _Annotator) -> list[dict[str, Any]]:
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
    return msg[len(prefix):] if msg.startswith(prefix) else msg
