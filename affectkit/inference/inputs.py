"""Input expansion for batch prediction: files, folders (recursive) and globs, and telling videos from images."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from affectkit.data.images import IMAGE_EXTENSIONS

IMAGE_EXTS = IMAGE_EXTENSIONS  # the one list training reads too
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".gif"}


class InputWarning(UserWarning):
    """An input that was skipped or only partly read; the message names it."""


def expand_inputs(inputs: Sequence[str | Path] | str | Path) -> list[tuple[str, str | None]]:
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
            matches = sorted(f for f in glob.glob(s, recursive=True) if Path(f).is_file())
            if not matches:
                out.append((s, "no file matches this pattern"))
            out.extend((f, None) for f in matches)
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
