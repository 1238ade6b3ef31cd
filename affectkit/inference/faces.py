"""Face detection (MTCNN, offline) and alignment of face crops for the affect models.

Conventions:
- Images are HxWx3 uint8 RGB numpy arrays; boxes are (x1, y1, x2, y2) in pixels of that image.
- Landmarks are 5 (x, y) points in MTCNN order: left eye, right eye, nose, mouth left, mouth right
  ("left"/"right" as seen in the image).
- Crop geometry (must match training): a square of side ``max(w, h) * (1 + 2 * margin)`` centred on the box
  centre, i.e. ``margin`` of the box size added on each side; parts outside the image are black.
  With landmarks the crop is first rotated about the box centre so the eye line is horizontal.

The detector is facenet-pytorch's MTCNN, whose weights ship inside the pip package (nothing is downloaded).
It needs torch; it is imported only when a ``FaceDetector`` is first used, so the ONNX path with
``detect=False`` stays torch-free.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

DEFAULT_MARGIN = 0.2


@dataclass
class Face:
    """One detected face: box (x1, y1, x2, y2), detector score, optional (5, 2) landmarks."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, repr=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def whole_image_face(rgb: np.ndarray) -> Face:
    """The ``--no-detect`` face: the whole image, score 1, no landmarks."""
    h, w = rgb.shape[:2]
    return Face(box=(0.0, 0.0, float(w), float(h)), score=1.0, landmarks=None)


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
            try:
                from facenet_pytorch import MTCNN
            except ImportError as e:  # pragma: no cover - depends on the install
                raise ImportError(
                    "face detection needs facenet-pytorch (MTCNN): "
                    "pip install --no-deps facenet-pytorch==2.5.3 requests; or use detect=False / --no-detect"
                ) from e
            self._mtcnn = MTCNN(keep_all=True, device=self.device, min_face_size=self.min_face_size,
                                post_process=False, select_largest=False)
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
        for box, p, pts in zip(boxes, probs, points):
            if p is None or float(p) < self.min_confidence:
                continue
            faces.append(Face(box=tuple(float(v) for v in np.asarray(box, dtype=np.float64)),
                              score=float(p), landmarks=np.asarray(pts, dtype=np.float64).reshape(5, 2)))
        faces.sort(key=lambda f: -f.score)
        return faces


def eye_angle(landmarks: np.ndarray | None) -> float:
    """Angle in degrees of the line from the left to the right eye (positive: right eye lower); 0 without landmarks."""
    if landmarks is None:
        return 0.0
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def crop_square(face: Face, margin: float = DEFAULT_MARGIN) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square crop for a face box (see module conventions)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x1, y1, x2, y2 = face.box
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, max(side, 1.0)


def align_face(rgb: np.ndarray, face: Face, size: int, margin: float = DEFAULT_MARGIN,
               rotate: bool = True) -> np.ndarray:
    """Square ``size``x``size`` uint8 RGB crop of ``face``: rotated by the eye line (if landmarks and
    ``rotate``), ``margin`` of the box size on each side, resized with antialiased bilinear interpolation.
    """
    rgb = _check_rgb(rgb)
    cx, cy, side = crop_square(face, margin)
    angle = eye_angle(face.landmarks) if rotate else 0.0
    img = Image.fromarray(rgb)
    if abs(angle) < 1e-3:
        crop = img.crop(_box(cx, cy, side))
    else:
        # Take a region large enough to hold the rotated square, rotate it about its centre, then cut.
        big = side * math.sqrt(2.0) + 2.0
        region = img.crop(_box(cx, cy, big))
        # PIL rotates counter-clockwise as displayed; a positive eye angle (right eye lower) needs exactly that.
        region = region.rotate(angle, resample=Image.BILINEAR, center=(region.width / 2.0, region.height / 2.0))
        crop = region.crop(_box(region.width / 2.0, region.height / 2.0, side))
    if crop.size != (size, size):
        crop = crop.resize((size, size), resample=Image.BILINEAR)
    return np.asarray(crop, dtype=np.uint8)


def _box(cx: float, cy: float, side: float) -> tuple[int, int, int, int]:
    half = side / 2.0
    x1, y1 = int(round(cx - half)), int(round(cy - half))
    s = max(int(round(side)), 1)
    return x1, y1, x1 + s, y1 + s


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB image, got an array of shape {rgb.shape}")
    if rgb.shape[2] == 4:
        rgb = rgb[:, :, :3]
    if rgb.dtype != np.uint8:
        if np.issubdtype(rgb.dtype, np.floating) and rgb.size and float(np.nanmax(rgb)) <= 1.0:
            rgb = rgb * 255.0
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)
