"""The one place where an image becomes a model input.

Training (the decoded-image store), evaluation and every way of using a model (``Predictor`` on torch or ONNX,
``predict`` on photos and videos, the web demo) call :class:`Preprocess`, so what ``evaluate`` measures is what
users get. A model's ``Preprocess`` is built once from its training config, saved in the checkpoint and in the
ONNX metadata, and restored from there on load (``Preprocess.from_dict``) — never rebuilt from defaults.

Steps, in order:

1. decode (:func:`decode_image`): any image form to HxWx3 uint8 RGB with the training decoder's rules
   (``affectkit.data.images``): gray replicated, alpha composited on black, 16-bit scaled, float images in
   [0, 1] scaled to 0..255, EXIF orientation applied, ``color_order="BGR"`` for OpenCV arrays;
2. crop: a dataset crop ``box = (x, y, w, h)`` is taken as it is, clamped to the image (``--no-detect`` and
   API ``detect=False`` use the whole image this way: framed exactly as training framed its crops); a
   *detected* face (:class:`~affectkit.inference.faces.Face`) becomes a square of side
   ``max(w, h) * (1 + 2 * face_margin)`` about the box centre, rotated so the eye line is horizontal when
   ``align`` and landmarks are given; parts outside the image are black;
3. colour: ``color="gray"`` turns the crop to luminance (ITU-R 601, Pillow's ``L``), replicated to 3 channels —
   a model trained on gray faces (FER+) sees colour photos as it saw its data;
4. resize to ``input_size`` square with Pillow (``interpolation``), skipped when the crop already has that size;
   a model trained on low-resolution faces (``source_size``, e.g. FER+'s 48 px) first has larger crops reduced to
   that size, so a sharp face from a photo reaches it with the detail its training faces had;
5. normalise (:meth:`Preprocess.to_tensor`): ``(x / 255 - mean) / std``, NCHW float32. The LightningModule
   applies the same formula on the device, after augmentation.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:  # faces imports nothing heavy, but keep this module free of inference imports at run time
    from affectkit.inference.faces import Face

VERSION = 2
# fields a contract of an older version may lack, with the value that reproduces what that version did
ADDED_FIELDS = {"source_size": None}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
COLORS = ("rgb", "gray")
INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
DEFAULT_FACE_MARGIN = 0.2

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray


def decode_image(source: ImageLike, color_order: str = "RGB", name: str | None = None) -> np.ndarray:
    """Any image (path, encoded bytes, PIL image, array) as HxWx3 uint8 RGB; see the module docstring.

    Raises ``affectkit.data.images.ImageError`` (a ValueError naming the file and the problem).
    """
    from affectkit.data.images import ImageError, _array_to_rgb, _to_rgb_array, load_image

    order = color_order.upper()
    if order not in ("RGB", "BGR"):
        raise ValueError(f"color_order must be 'RGB' or 'BGR', got {color_order!r}")
    if isinstance(source, (str, os.PathLike)):
        return load_image(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return load_image(io.BytesIO(bytes(source)), name=name or "upload")
    if isinstance(source, Image.Image):
        try:
            return np.ascontiguousarray(_to_rgb_array(ImageOps.exif_transpose(source)))
        except (OSError, ValueError) as e:
            raise ImageError(name or "image", f"not a usable PIL image ({e})") from e
    if isinstance(source, np.ndarray):
        a = source
        if order == "BGR" and a.ndim == 3 and a.shape[2] in (3, 4):
            a = np.concatenate([a[:, :, 2::-1], a[:, :, 3:]], axis=2)
        return np.ascontiguousarray(_array_to_rgb(a, name or "array"))
    raise ImageError(
        name or "input",
        f"not an image: {type(source).__name__} (give a path, bytes, a PIL image or an HxWx3 array)",
        "not an image",
    )


@dataclass(frozen=True)
class Preprocess:
    """How a model's inputs are made (see the module docstring). Immutable; stored with every model."""

    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    color: str = "rgb"
    face_margin: float = DEFAULT_FACE_MARGIN
    align: bool = True
    source_size: int | None = None
    version: int = VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "input_size", int(self.input_size))
        object.__setattr__(self, "face_margin", float(self.face_margin))
        if self.source_size is not None:
            object.__setattr__(self, "source_size", int(self.source_size))
            if self.source_size < 1:
                raise ValueError(f"preprocess source_size must be >= 1 or None, got {self.source_size}")
        if self.input_size < 1:
            raise ValueError(f"preprocess input_size must be >= 1, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"preprocess mean/std must be 3 numbers (std > 0), got {self.mean} / {self.std}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"preprocess interpolation must be one of {sorted(INTERPOLATIONS)}, got {self.interpolation!r}"
            )
        if self.color not in COLORS:
            raise ValueError(f"preprocess color must be one of {COLORS}, got {self.color!r}")
        if not (self.face_margin > -0.5 and math.isfinite(self.face_margin)):
            # negative: a square smaller than the detector's box, for datasets cropped tighter than MTCNN's box
            raise ValueError(f"preprocess face_margin must be > -0.5, got {self.face_margin}")
        if self.version > VERSION:
            raise ValueError(
                f"preprocess version {self.version} is newer than this affectkit ({VERSION}): "
                "upgrade affectkit to use this model"
            )

    # -- storage -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists for mean/std); ``Preprocess.from_dict`` restores it exactly."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        """Restore a stored contract. Every field must be present: a model is never fed by defaults."""
        names = {f.name for f in fields(cls)}
        if int(d.get("version", VERSION)) < VERSION:
            d = {**ADDED_FIELDS, **d}
        missing = sorted(names - set(d))
        if missing:
            raise ValueError(
                f"stored preprocessing lacks {', '.join(missing)}: the model file was not written "
                "by this affectkit (re-export it, or load its checkpoint)"
            )
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kwargs)

    @classmethod
    def from_config(cls, config: dict[str, Any], backbone_preprocess: dict[str, Any] | None = None) -> Preprocess:
        """The contract a training config defines: its size, colour mode and face margin, the backbone's
        normalisation (``model.preprocess``), bilinear resizing (what the decoded-image store has always used)."""
        bp = backbone_preprocess or {}
        size = config.get("image_size") or bp.get("input_size", 224)  # a bare model: its own input size
        return cls(
            input_size=int(size),
            mean=tuple(bp.get("mean", IMAGENET_MEAN)),
            std=tuple(bp.get("std", IMAGENET_STD)),
            interpolation=config.get("interpolation") or "bilinear",
            color=config.get("color") or "rgb",
            face_margin=float(config.get("face_margin", DEFAULT_FACE_MARGIN)),
            align=bool(config.get("align_faces", True)),
            source_size=config.get("source_size"),
        )

    def store_key(self) -> str:
        """What decides the pixels of a decoded-image store (normalisation is applied later, on the device)."""
        key = f"{self.input_size}px-{self.color}-{self.interpolation}"
        return key + (f"-from{self.source_size}" if self.source_size else "")

    # -- image -> uint8 face -------------------------------------------------------------------------------
    def to_array(
        self, image: ImageLike, box: Sequence[float] | None = None, face: Face | None = None, color_order: str = "RGB"
    ) -> np.ndarray:
        """The ``input_size`` x ``input_size`` x 3 uint8 model input (before normalisation) for one face.

        ``box`` is a dataset crop ``(x, y, w, h)`` taken as it is; ``face`` a detected face framed with
        ``face_margin`` (and aligned); neither: the whole image is the face.
        """
        if face is not None:
            rgb = decode_image(image, color_order)
            return self.finish(self.crop_face(rgb, face))
        if box is not None and isinstance(image, (str, os.PathLike)):
            from affectkit.data.images import load_image

            return self.finish(load_image(image, box=box))  # crops in decoded, EXIF-upright pixels
        rgb = decode_image(image, color_order)
        if box is not None:
            from affectkit.data.images import _crop

            rgb = _crop(rgb, box, "image")
        return self.finish(rgb)

    def crop_face(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The framed (square, margin, eye-line aligned) region of a face at the image's resolution; a face
        that was not detected (``face.detected`` False: a whole image or a given crop) is taken as it is."""
        x1, y1, x2, y2 = face.box
        if not getattr(face, "detected", True):
            from affectkit.data.images import _crop

            return _crop(rgb, (x1, y1, x2 - x1, y2 - y1), "image")
        cx, cy, side = face_square(face.box, self.face_margin)
        angle = eye_angle(face.landmarks) if self.align else 0.0
        img = Image.fromarray(rgb)
        if abs(angle) < 1e-3:
            return np.asarray(img.crop(_square(cx, cy, side)))
        # A region large enough to hold the rotated square, rotated about its centre, then cut.
        region = img.crop(_square(cx, cy, side * math.sqrt(2.0) + 2.0))
        # PIL rotates counter-clockwise as displayed; a positive eye angle (right eye lower) needs exactly that.
        region = region.rotate(
            angle, resample=Image.Resampling.BILINEAR, center=(region.width / 2.0, region.height / 2.0)
        )
        return np.asarray(region.crop(_square(region.width / 2.0, region.height / 2.0, side)))

    def finish(self, crop: np.ndarray) -> np.ndarray:
        """Colour mode and resize of an HxWx3 uint8 crop: the last steps every path shares."""
        img = Image.fromarray(np.ascontiguousarray(crop, dtype=np.uint8))
        if self.color == "gray":
            img = img.convert("L")
        s = self.source_size
        if s and (img.width > s or img.height > s):
            img = img.resize((s, s), INTERPOLATIONS[self.interpolation])
        if img.size != (self.input_size, self.input_size):
            img = img.resize((self.input_size, self.input_size), INTERPOLATIONS[self.interpolation])
        out = np.asarray(img, dtype=np.uint8)
        if out.ndim == 2:
            out = np.repeat(out[:, :, None], 3, axis=2)
        return np.ascontiguousarray(out)

    # -- uint8 -> normalised tensor ------------------------------------------------------------------------
    def to_tensor(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) → float32 (N, 3, S, S), ``(x / 255 - mean) / std``."""
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(
                f"expected uint8 faces of shape (N, {self.input_size}, {self.input_size}, 3), got {batch.shape}"
            )
        x = batch.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
        mean = np.asarray(self.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, 3, 1, 1)
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def face_square(box: Sequence[float], margin: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) framing a detected box ``(x1, y1, x2, y2)``: ``margin`` of its size per side."""
    if not margin > -0.5:
        raise ValueError(f"margin must be > -0.5 (a square at least as large as nothing), got {margin}")
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, max(side, 1.0)


def eye_angle(landmarks) -> float:
    """Angle in degrees of the line from the left to the right eye (positive: right eye lower)."""
    if landmarks is None:
        return 0.0
    (lx, ly), (rx, ry) = np.asarray(landmarks)[0], np.asarray(landmarks)[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def _square(cx: float, cy: float, side: float) -> tuple[int, int, int, int]:
    half = side / 2.0
    x1, y1 = int(round(cx - half)), int(round(cy - half))
    s = max(int(round(side)), 1)
    return x1, y1, x1 + s, y1 + s


def heads_from_config(config: dict[str, Any]) -> dict[str, bool]:
    """Heads a training config trains (loss weight above 0); the data may still lack some labels."""
    return {k: float(config.get(f"loss_{k}", 1.0) or 0.0) > 0 for k in ("expression", "valence", "arousal")}


def restore(meta: dict[str, Any]) -> tuple[Preprocess, dict[str, bool]]:
    """The contract and trained heads stored in a model's metadata (checkpoint or ONNX).

    Models written before the contract was stored carry their training config (checkpoints) or the
    normalisation and size (ONNX): the contract is rebuilt from what they stored, not from defaults.
    """
    pre = meta.get("preprocess") or {}
    config = meta.get("config") or {}
    if "version" in pre:
        contract = Preprocess.from_dict(pre)
    elif config:
        contract = Preprocess.from_config(config, pre)
    elif pre:
        contract = Preprocess(
            input_size=pre["input_size"],
            mean=pre["mean"],
            std=pre["std"],
            interpolation=pre.get("interpolation", "bilinear"),
            face_margin=meta.get("face_margin", DEFAULT_FACE_MARGIN),
        )
    else:
        raise ValueError("the model carries no preprocessing record: re-export it with this affectkit")
    stored = meta.get("heads") or (heads_from_config(config) if config else {})
    heads = {k: bool(stored.get(k, True)) for k in ("expression", "valence", "arousal")}
    return contract, heads


def describe_heads(heads: dict[str, bool]) -> str | None:
    """One line for users when a model lacks heads; None when all three were trained."""
    missing = [k for k in ("expression", "valence", "arousal") if not heads.get(k, True)]
    if not missing:
        return None
    what = " and ".join(missing)
    return f"this model was trained without {what} labels: it reports no {what}"
