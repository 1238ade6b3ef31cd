"""Predict expression, valence and arousal for the faces in images, with a PyTorch or ONNX Runtime model.

Conventions:
- Input images are paths, PIL images or HxWx3 uint8 arrays (RGB unless ``color="BGR"``, e.g. OpenCV frames).
- Boxes are (x1, y1, x2, y2) pixels in the input image; with ``detect=False`` the whole image is the face.
- ``probabilities`` are the softmax of the expression logits (averaged over the flip with ``tta=True``);
  valence and arousal are the model's outputs in [-1, 1].
- The ONNX backend imports neither torch nor MTCNN at load time: ``Predictor.load("m.onnx")`` then
  ``predict(..., detect=False)`` runs on onnxruntime + numpy + PIL only. ``detect=True`` imports torch lazily
  for MTCNN (facenet-pytorch is torch-based).
"""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from affectkit.labels import EXPRESSIONS
from affectkit.inference.faces import DEFAULT_MARGIN, Face, FaceDetector, align_face, whole_image_face

ONNX_METADATA_KEY = "affectkit"


class UnreadableImageError(ValueError):
    """An input that is not a decodable image; the message names the file."""


@dataclass
class FacePrediction:
    """Prediction for one face. ``box`` is (x1, y1, x2, y2) in input-image pixels."""

    box: tuple[float, float, float, float]
    score: float
    expression: str
    expression_id: int
    probabilities: dict[str, float]
    valence: float
    arousal: float
    landmarks: list[list[float]] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plain floats and lists)."""
        d = asdict(self)
        d["box"] = [float(v) for v in self.box]
        return d


def read_image(source: str | Path | Image.Image | np.ndarray, color: str = "RGB") -> np.ndarray:
    """HxWx3 uint8 RGB array from a path (EXIF orientation applied), a PIL image or an array.

    ``color="BGR"`` flips the channels of an array input (OpenCV order). Raises UnreadableImageError naming
    the file for anything that cannot be decoded.
    """
    color = color.upper()
    if color not in ("RGB", "BGR"):
        raise ValueError(f"color must be 'RGB' or 'BGR', got {color!r}")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise UnreadableImageError(f"{path}: no such file")
        try:
            # The training pipeline's decoder, so colour modes and EXIF are handled identically.
            from affectkit.data.images import load_image
        except ImportError:
            load_image = None
        try:
            if load_image is not None:
                return load_image(path)
            with Image.open(path) as im:
                return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            msg = str(e) if str(path) in str(e) else f"{path}: not a readable image ({e})"
            raise UnreadableImageError(msg) from e
    if isinstance(source, Image.Image):
        return np.asarray(source.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(source)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise UnreadableImageError(f"expected an HxWx3 image array, got shape {arr.shape}")
    arr = arr[:, :, :3]
    if color == "BGR":
        arr = arr[:, :, ::-1]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _TorchBackend:
    name = "torch"

    def __init__(self, model, device: str = "cpu", precision: str = "fp32", channels_last: bool = False):
        import torch

        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.torch = torch
        self.device = torch.device(device)
        self.precision = precision
        self.channels_last = channels_last
        self.model = model.eval().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        t = torch.from_numpy(x).to(self.device)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            logits, va = self.model(t)
        return logits.float().cpu().numpy(), va.float().cpu().numpy()


class _OnnxBackend:
    name = "onnx"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model ({e})") from e
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        if "logits" not in outputs or "va" not in outputs:
            raise ValueError(f"{path}: ONNX model must have outputs 'logits' and 'va', has {outputs}")
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_METADATA_KEY not in meta:
            raise ValueError(f"{path}: ONNX model lacks affectkit metadata (export it with affectkit export)")
        self.meta = json.loads(meta[ONNX_METADATA_KEY])

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, va = self.session.run(["logits", "va"], {self.input_name: x})
        return np.asarray(logits, dtype=np.float32), np.asarray(va, dtype=np.float32)


class Predictor:
    """Faces → expression, probabilities, valence, arousal.

    Build with ``Predictor.load(path)`` (a Lightning ``.ckpt`` or an exported ``.onnx``) or
    ``Predictor.from_model(model)``. Crops of all faces in a call are stacked and run in batches of
    ``batch_size`` (one forward per batch).

    Parameters
    ----------
    backend : callable mapping a float32 (N, 3, S, S) normalised batch to (logits (N, 8), va (N, 2)).
    preprocess : {"mean", "std", "input_size"} the model was trained with.
    face_margin : crop margin (fraction of box size per side) the model was trained with.
    min_confidence : face-detector threshold.
    tta : average predictions over the image and its horizontal flip.
    """

    def __init__(self, backend, preprocess: dict, face_margin: float = DEFAULT_MARGIN,
                 expressions: Sequence[str] = EXPRESSIONS, backbone: str = "", min_confidence: float = 0.9,
                 tta: bool = False, batch_size: int = 32, device: str = "cpu"):
        self.backend = backend
        self.mean = np.asarray(preprocess["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(preprocess["std"], dtype=np.float32).reshape(1, 3, 1, 1)
        self.input_size = int(preprocess["input_size"])
        self.preprocess = dict(preprocess)
        self.face_margin = float(face_margin)
        self.expressions = tuple(expressions)
        self.backbone = backbone
        self.tta = bool(tta)
        self.batch_size = max(int(batch_size), 1)
        self.device = device
        self.min_confidence = float(min_confidence)
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, backend: str | None = None, device: str = "cpu", **kwargs) -> "Predictor":
        """Load a ``.ckpt`` or run folder (backend "torch") or ``.onnx`` (backend "onnx"; by suffix when None).

        kwargs go to the constructor (min_confidence, tta, batch_size) and, for torch, ``precision``
        ("fp32" default, or "bf16" autocast) and ``channels_last``; for onnx, ``threads``.
        """
        path = Path(path)
        if path.is_dir():  # a training run folder: its checkpoints/best.ckpt (or last.ckpt)
            from affectkit.training.checkpoint import resolve_checkpoint

            path = resolve_checkpoint(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        if backend is None:
            backend = "onnx" if path.suffix.lower() == ".onnx" else "torch"
        if backend == "onnx":
            if path.suffix.lower() != ".onnx":
                raise ValueError(f"{path}: backend 'onnx' needs an exported .onnx file (see affectkit export)")
            be = _OnnxBackend(path, device=device, threads=kwargs.pop("threads", None))
            meta = be.meta
            return cls(be, preprocess=meta["preprocess"], face_margin=meta.get("face_margin", DEFAULT_MARGIN),
                       expressions=meta.get("expressions", EXPRESSIONS), backbone=meta.get("backbone", ""),
                       device=device, **kwargs)
        if backend != "torch":
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if path.suffix.lower() == ".onnx":
            raise ValueError(f"{path}: an .onnx file needs backend 'onnx'")
        from affectkit.training.checkpoint import load_model

        model, meta = load_model(path)
        return cls.from_model(model, face_margin=meta.get("face_margin", DEFAULT_MARGIN),
                              preprocess=meta.get("preprocess"), backbone=meta.get("backbone", ""),
                              device=device, **kwargs)

    @classmethod
    def from_model(cls, model, face_margin: float = DEFAULT_MARGIN, preprocess: dict | None = None,
                   backbone: str | None = None, device: str = "cpu", precision: str = "fp32",
                   channels_last: bool = False, **kwargs) -> "Predictor":
        """Wrap an in-memory AffectModel (``logits, va = model(x)``, ``model.preprocess``)."""
        be = _TorchBackend(model, device=device, precision=precision, channels_last=channels_last)
        return cls(be, preprocess=preprocess or model.preprocess, face_margin=face_margin,
                   backbone=backbone if backbone is not None else getattr(model, "backbone_name", ""),
                   device=device, **kwargs)

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", type(self.backend).__name__)

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector(min_confidence=self.min_confidence, device=self.device)
        return self._detector

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend_name, "backbone": self.backbone, "input_size": self.input_size,
                "face_margin": self.face_margin, "expressions": list(self.expressions), "tta": self.tta}

    # ---- prediction ---------------------------------------------------------------------------
    def predict(self, image: str | Path | Image.Image | np.ndarray, detect: bool = True,
                color: str = "RGB") -> list[FacePrediction]:
        """Predictions for each face in one image (empty list when detection finds none)."""
        return self.predict_batch([image], detect=detect, color=color)[0]

    def predict_batch(self, images: Iterable[str | Path | Image.Image | np.ndarray], detect: bool = True,
                      color: str = "RGB") -> list[list[FacePrediction]]:
        """One list of FacePrediction per image; all faces go through the model in shared batches."""
        rgbs = [read_image(im, color=color) for im in images]
        faces = [self.find_faces(rgb, detect=detect) for rgb in rgbs]
        return self.predict_faces(rgbs, faces)

    def find_faces(self, rgb: np.ndarray, detect: bool = True) -> list[Face]:
        """Detected faces (``detect=True``) or the whole image as one face."""
        return self.detector.detect(rgb) if detect else [whole_image_face(rgb)]

    def predict_faces(self, rgbs: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> list[list[FacePrediction]]:
        """Predictions for given faces of given RGB images (lists aligned by index)."""
        crops = [align_face(rgb, f, self.input_size, self.face_margin) for rgb, fs in zip(rgbs, faces) for f in fs]
        if not crops:
            return [[] for _ in rgbs]
        probs, va = self.predict_crops(np.stack(crops))
        out, k = [], 0
        for fs in faces:
            preds = []
            for f in fs:
                preds.append(self._prediction(f, probs[k], va[k]))
                k += 1
            out.append(preds)
        return out

    def predict_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, 8), va (N, 2)) for aligned uint8 crops (N, S, S, 3) at the model input size."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"crops must have shape (N, {self.input_size}, {self.input_size}, 3), got {crops.shape}")
        probs, va = [], []
        for i in range(0, len(crops), self.batch_size):
            x = self.normalise(crops[i:i + self.batch_size])
            p, v = self._forward(x)
            if self.tta:
                p2, v2 = self._forward(np.ascontiguousarray(x[:, :, :, ::-1]))
                p, v = (p + p2) / 2.0, (v + v2) / 2.0
            probs.append(p)
            va.append(v)
        return np.concatenate(probs), np.concatenate(va)

    def normalise(self, crops: np.ndarray) -> np.ndarray:
        """uint8 NHWC → float32 NCHW, (x / 255 - mean) / std."""
        x = crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:  # one forward at a time: the web server calls from several threads
            logits, va = self.backend(x)
        return softmax(logits.astype(np.float64)), va.astype(np.float64)

    def _prediction(self, face: Face, probs: np.ndarray, va: np.ndarray) -> FacePrediction:
        k = int(np.argmax(probs))
        return FacePrediction(
            box=tuple(float(v) for v in face.box), score=float(face.score), expression=self.expressions[k],
            expression_id=k, probabilities={n: float(p) for n, p in zip(self.expressions, probs)},
            valence=float(va[0]), arousal=float(va[1]),
            landmarks=None if face.landmarks is None else np.asarray(face.landmarks).round(2).tolist())
