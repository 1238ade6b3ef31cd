"""Reading video frames and writing annotated copies (images, and videos as MP4, GIF or PNG frames).

Readers: animated GIFs with Pillow; other formats with OpenCV (``cv2``) if installed, else imageio with its
pyav or ffmpeg plugin if installed, else an error naming what to install.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from affectkit.inference.draw import draw_predictions
from affectkit.inference.predictor import FacePrediction, UnreadableImageError

MAX_GIF_FRAMES = 300  # annotated videos written as GIF (no OpenCV) beyond this become PNG frames


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
        raise RuntimeError(
            f"{path}: no video reader installed: pip install affectkit[video] (or imageio with "
            f"av or imageio-ffmpeg); animated GIFs work without one"
        )


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


class Annotator:
    """Writes annotated copies under one folder, with unique names; ``folder=None`` writes nothing."""

    def __init__(self, folder: str | Path | None):
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._used: set[str] = set()

    def name(self, source: str, suffix: str) -> Path:
        assert self.folder is not None, "only called when writing annotated copies"
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
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]  # in cv2, not in its stubs
            writer = cv2.VideoWriter(str(out), fourcc, fps, (w, h))
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
