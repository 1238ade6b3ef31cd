"""Face detection (MTCNN, offline) and alignment of face crops for the affect models.

Conventions:
- Images are HxWx3 uint8 RGB numpy arrays; boxes are (x1, y1, x2, y2) in pixels of that image.
- Landmarks are 5 (x, y) points in MTCNN order: left eye, right eye, nose, mouth left, mouth right
  ("left"/"right" as seen in the image).
- Crop geometry lives in ``affectkit.preprocess`` (the model's contract): a detected face becomes a square of
  side ``max(w, h) * (1 + 2 * margin)`` about the box centre, eye line levelled; a face that was not detected
  (``detected=False``: the whole image, ``--no-detect``) is taken as it is, as training took its crops.

The detector is facenet-pytorch's MTCNN, whose weights ship inside the pip package (nothing is downloaded).
It needs torch; it is imported only when a ``FaceDetector`` is first used, so the ONNX path with
``detect=False`` stays torch-free.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from affectkit.preprocess import DEFAULT_FACE_MARGIN as DEFAULT_MARGIN
from affectkit.preprocess import Preprocess, decode_image, eye_angle, face_square  # noqa: F401 - eye_angle: public here too


@dataclass
class Face:
    """One face: box (x1, y1, x2, y2), detector score, optional (5, 2) landmarks. ``detected`` False marks a
    given crop (framed as it is, no margin); detector output is framed with the model's face margin."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, repr=False)
    detected: bool = True

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def whole_image_face(rgb: np.ndarray) -> Face:
    """The ``--no-detect`` face: the whole image as it is (no margin), score 1, no landmarks."""
    h, w = rgb.shape[:2]
    return Face(box=(0.0, 0.0, float(w), float(h)), score=1.0, landmarks=None, detected=False)


class FaceDetector:
    """MTCNN face detector with weights from the installed ``facenet-pytorch`` package.

    Parameters
    ----------
    min_confidence : faces scoring below this (MTCNN's final-stage probability, 0..1) are dropped.
    device : torch device for MTCNN ("cpu", "cuda").
    min_face_size : smallest face side in pixels MTCNN searches for.
    """

    def __init__(self, min_confidence: float = 0.9, device: str = "cpu", min_face_size: int = 20):
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.min_confidence = float(min_confidence)
        self.device = device
        self.min_face_size = int(min_face_size)
        self._mtcnn = None
        self._lock = threading.Lock()

    def _model(self):
        if self._mtcnn is None:
            from affectkit.extras import require

            require("faces", "face detection (MTCNN)", instead="use detect=False / --no-detect")
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(
                keep_all=True,
                device=self.device,
                min_face_size=self.min_face_size,
                post_process=False,
                select_largest=False,
            )
        return self._mtcnn

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an HxWx3 uint8 RGB image, highest score first."""
        rgb = _check_rgb(rgb)
        import torch  # MTCNN is torch-based; imported here so ONNX-only use never loads it

        mtcnn = self._model()
        with self._lock, torch.inference_mode():
            boxes, probs, points = mtcnn.detect(Image.fromarray(rgb), landmarks=True)
        if boxes is None:
            return []
        faces = []
        for box, p, pts in zip(boxes, probs, points, strict=True):
            if p is None or float(p) < self.min_confidence:
                continue
            x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64))
            faces.append(
                Face(box=(x1, y1, x2, y2), score=float(p), landmarks=np.asarray(pts, dtype=np.float64).reshape(5, 2))
            )
        faces.sort(key=lambda f: -f.score)
        return faces


def crop_square(face: Face, margin: float = DEFAULT_MARGIN) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square crop for a detected face box (see module conventions)."""
    return face_square(face.box, margin)


def align_face(
    rgb: np.ndarray, face: Face, size: int, margin: float = DEFAULT_MARGIN, rotate: bool = True
) -> np.ndarray:
    """Square ``size``x``size`` uint8 RGB crop of ``face`` by the contract's rules (``Preprocess.crop_face`` then
    ``finish``) with this size, margin and alignment; a model's own ``Preprocess`` is what ``Predictor`` uses."""
    pre = Preprocess(input_size=size, face_margin=margin, align=rotate)
    return pre.finish(pre.crop_face(_check_rgb(rgb), face))  # decoded once, here


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """The detector's input: any array image as HxWx3 uint8 RGB (the contract's decoding rules)."""
    from affectkit.data.images import ImageError

    try:
        return decode_image(np.asarray(rgb))
    except ImageError as e:
        raise ValueError(f"expected an HxWx3 RGB image, got an array of shape {np.shape(rgb)} ({e.reason})") from e
