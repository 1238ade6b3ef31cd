"""Predict expression, valence and arousal for the faces in images, with a PyTorch or ONNX Runtime model.

Conventions:
- Input images are paths, encoded bytes, PIL images or arrays (HxW, HxWx3, HxWx4; uint8, uint16 or float in
  [0, 1]; RGB unless ``color="BGR"``, e.g. OpenCV frames). Every face becomes a model input through the model's
  own :class:`~affectkit.preprocess.Preprocess`, restored from the checkpoint or ONNX metadata: the same call the
  decoded-image store made for training and evaluation.
- Boxes are (x1, y1, x2, y2) pixels in the input image; with ``detect=False`` the whole image is the face, taken
  as it is (no margin), as training took its crops.
- ``probabilities`` are the softmax of the expression logits (averaged over the flip with ``tta=True``);
  valence and arousal are the model's outputs in [-1, 1], or None for a head the model was not trained for
  (``Predictor.heads``; e.g. FER+ models have no valence/arousal).
- The ONNX backend imports neither torch nor MTCNN at load time: ``Predictor.load("m.onnx")`` then
  ``predict(..., detect=False)`` runs on onnxruntime + numpy + PIL only. ``detect=True`` imports torch lazily
  for MTCNN (facenet-pytorch is torch-based).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from affectkit.inference.backends import ONNX_METADATA_KEY as ONNX_METADATA_KEY  # its former home
from affectkit.inference.backends import _OnnxBackend, _TorchBackend
from affectkit.inference.faces import Face, FaceDetector, whole_image_face
from affectkit.io import resolve_checkpoint
from affectkit.labels import EXPRESSIONS
from affectkit.preprocess import Preprocess, describe_heads, restore


class UnreadableImageError(ValueError):
    """An input that is not a decodable image; the message names the file."""


@dataclass
class FacePrediction:
    """Prediction for one face. ``box`` is (x1, y1, x2, y2) in input-image pixels. A head the model was not
    trained for reports nothing: ``valence``/``arousal`` None; ``expression``/``expression_id`` None and empty
    ``probabilities`` for a model trained without expression labels."""

    box: tuple[float, float, float, float]
    score: float
    expression: str | None
    expression_id: int | None
    probabilities: dict[str, float]
    valence: float | None
    arousal: float | None
    landmarks: list[list[float]] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plain floats and lists)."""
        d = asdict(self)
        d["box"] = [float(v) for v in self.box]
        return d


def read_image(source: str | Path | bytes | Image.Image | np.ndarray, color: str = "RGB") -> np.ndarray:
    """HxWx3 uint8 RGB array from any image form, by the training decoder's rules (see
    ``affectkit.preprocess.decode_image``). Raises UnreadableImageError naming the file."""
    from affectkit.data.images import ImageError
    from affectkit.preprocess import decode_image

    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise UnreadableImageError(f"{source}: no such file")
    try:
        return decode_image(source, color_order=color)
    except ImageError as e:
        raise UnreadableImageError(str(e)) from e


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Predictor:
    """Faces → expression, probabilities, valence, arousal.

    Build with ``Predictor.load(path)`` (a Lightning ``.ckpt``, a run folder or an exported ``.onnx``) or
    ``Predictor.from_model(model, preprocess)``. Crops of all faces in a call are stacked and run in batches of
    ``batch_size`` (one forward per batch).

    Parameters
    ----------
    backend : callable mapping a float32 (N, 3, S, S) normalised batch to (logits (N, 8), va (N, 2)).
    preprocess : the model's :class:`~affectkit.preprocess.Preprocess` (or its stored dict).
    heads : which heads were trained ({"expression", "valence", "arousal"} -> bool); untrained ones report None.
    face_margin : overrides the contract's margin around detected faces (None: the model's own).
    model_name, summary : a shipped model's name and one-line card summary (shown by the web demo).
    min_confidence : face-detector threshold.
    tta : average predictions over the image and its horizontal flip.
    """

    def __init__(
        self,
        backend,
        preprocess: Preprocess | dict,
        expressions: Sequence[str] = EXPRESSIONS,
        backbone: str = "",
        min_confidence: float = 0.9,
        tta: bool = False,
        batch_size: int = 32,
        device: str = "cpu",
        heads: dict[str, bool] | None = None,
        face_margin: float | None = None,
        model_name: str | None = None,
        summary: str | None = None,
    ):
        self.backend = backend
        self.model_name = model_name  # a shipped model's name (affectkit models), else None
        self.summary = summary
        self.contract = preprocess if isinstance(preprocess, Preprocess) else Preprocess.from_dict(preprocess)
        if face_margin is not None:  # an explicit choice for detected faces; the stored margin otherwise
            self.contract = dataclasses.replace(self.contract, face_margin=float(face_margin))
        self.heads = {k: bool((heads or {}).get(k, True)) for k in ("expression", "valence", "arousal")}
        self.expressions = tuple(expressions)
        self.backbone = backbone
        self.tta = bool(tta)
        self.batch_size = max(int(batch_size), 1)
        self.device = device
        self.min_confidence = float(min_confidence)
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()

    @property
    def input_size(self) -> int:
        return self.contract.input_size

    @property
    def face_margin(self) -> float:
        return self.contract.face_margin

    @property
    def preprocess(self) -> dict[str, Any]:
        return self.contract.to_dict()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def load(
        cls, path: str | Path | None = None, backend: str | None = None, device: str = "cpu", **kwargs
    ) -> Predictor:
        """Load a ``.ckpt`` or run folder (backend "torch") or ``.onnx`` (backend "onnx"; by suffix when None), or
        a shipped model by name (``affectkit models``; None: the default, ``"ferplus"``) on either backend.

        kwargs go to the constructor (min_confidence, tta, batch_size) and, for torch, ``precision``
        ("fp32" default, or "bf16" autocast) and ``channels_last``; for onnx, ``threads``.
        """
        from affectkit import pretrained

        # None: the shipped default, whatever folders the working directory holds; a run folder: its best
        path = pretrained.weights_path() if path is None else resolve_checkpoint(path)
        shipped = pretrained.find(path)
        if shipped is not None:
            kwargs.setdefault("model_name", shipped.name)
            kwargs.setdefault("summary", shipped.summary)
        if backend == "onnx" and path.suffix.lower() == ".safetensors":
            path = pretrained.onnx_file(path)  # exported once, into the cache
        if backend is None:
            backend = "onnx" if path.suffix.lower() == ".onnx" else "torch"
        if backend == "onnx":
            if path.suffix.lower() != ".onnx":
                raise ValueError(f"{path}: backend 'onnx' needs an exported .onnx file (see affectkit export)")
            kwargs.pop("precision", None)  # ONNX Runtime runs the exported fp32 graph
            kwargs.pop("channels_last", None)
            be = _OnnxBackend(path, device=device, threads=kwargs.pop("threads", None))
            contract, heads = restore(be.meta)
            return cls(
                be,
                preprocess=contract,
                expressions=be.meta.get("expressions", EXPRESSIONS),
                backbone=be.meta.get("backbone", ""),
                device=device,
                heads=heads,
                **kwargs,
            )
        if backend != "torch":
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if path.suffix.lower() == ".onnx":
            raise ValueError(f"{path}: an .onnx file needs backend 'onnx'")
        from affectkit.training.checkpoint import load_model

        model, meta = load_model(path)
        return cls.from_model(
            model,
            preprocess=meta["contract"],
            backbone=meta.get("backbone", ""),
            device=device,
            heads=meta["heads"],
            **kwargs,
        )

    @classmethod
    def from_model(
        cls,
        model,
        preprocess: Preprocess | dict | None = None,
        backbone: str | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
        heads: dict[str, bool] | None = None,
        **kwargs,
    ) -> Predictor:
        """Wrap an in-memory AffectModel (``logits, va = model(x)``). ``preprocess`` is the contract it was
        trained with; without one, the model's backbone normalisation at its ``input_size`` (an untrained or
        hand-built model)."""
        if preprocess is None:
            preprocess = Preprocess.from_config({}, model.preprocess)
        be = _TorchBackend(model, device=device, precision=precision, channels_last=channels_last)
        return cls(
            be,
            preprocess=preprocess,
            heads=heads,
            backbone=backbone if backbone is not None else getattr(model, "backbone_name", ""),
            device=device,
            **kwargs,
        )

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", type(self.backend).__name__)

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector(min_confidence=self.min_confidence, device=self.device)
        return self._detector

    def info(self) -> dict[str, Any]:
        """What the model is and what it can predict (the web demo's ``/info``)."""
        meta = getattr(self.backend, "meta", {})  # an exported file's metadata; none for an in-memory model
        return {
            "model": self.model_name,
            "summary": self.summary,
            "backend": self.backend_name,
            "backbone": self.backbone,
            "input_size": self.input_size,
            "face_margin": self.face_margin,
            "expressions": list(self.expressions),
            "tta": self.tta,
            "heads": dict(self.heads),
            "preprocess": self.preprocess,
            "note": describe_heads(self.heads),
            # an int8 export says so, with its comparison to the float model (``export --quantize int8``)
            "quantized": meta.get("quantized"),
            "int8_check": meta.get("int8_check"),
        }

    # ---- prediction ---------------------------------------------------------------------------
    def predict(
        self, image: str | Path | bytes | Image.Image | np.ndarray, detect: bool = True, color: str = "RGB"
    ) -> list[FacePrediction]:
        """Predictions for each face in one image (empty list when detection finds none)."""
        return self.predict_batch([image], detect=detect, color=color)[0]

    def predict_batch(
        self, images: Iterable[str | Path | bytes | Image.Image | np.ndarray], detect: bool = True, color: str = "RGB"
    ) -> list[list[FacePrediction]]:
        """One list of FacePrediction per image; all faces go through the model in shared batches."""
        rgbs = [read_image(im, color=color) for im in images]
        faces = [self.find_faces(rgb, detect=detect) for rgb in rgbs]
        return self.predict_faces(rgbs, faces)

    def find_faces(self, rgb: np.ndarray, detect: bool = True) -> list[Face]:
        """Detected faces (``detect=True``) or the whole image as one face, taken as it is."""
        return self.detector.detect(rgb) if detect else [whole_image_face(rgb)]

    def face_inputs(self, rgb: np.ndarray, faces: Sequence[Face]) -> list[np.ndarray]:
        """The uint8 model input of each face, by the model's contract."""
        return [self.contract.finish(self.contract.crop_face(rgb, f)) for f in faces]

    def predict_faces(self, rgbs: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> list[list[FacePrediction]]:
        """Predictions for given faces of given RGB images (lists aligned by index)."""
        crops = [c for rgb, fs in zip(rgbs, faces, strict=True) for c in self.face_inputs(rgb, fs)]
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
        """(probabilities (N, 8), va (N, 2)) for model inputs (N, S, S, 3) uint8 made by the contract."""
        crops = np.asarray(crops)
        probs, va = [], []
        for i in range(0, len(crops), self.batch_size):
            x = self.contract.to_tensor(crops[i : i + self.batch_size])
            p, v = self._forward(x)
            if self.tta:
                p2, v2 = self._forward(np.ascontiguousarray(x[:, :, :, ::-1]))
                p, v = (p + p2) / 2.0, (v + v2) / 2.0
            probs.append(p)
            va.append(v)
        return np.concatenate(probs), np.concatenate(va)

    def normalise(self, crops: np.ndarray) -> np.ndarray:
        """uint8 NHWC → float32 NCHW, (x / 255 - mean) / std (``Preprocess.to_tensor``)."""
        return self.contract.to_tensor(crops)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:  # one forward at a time: the web server calls from several threads
            logits, va = self.backend(x)
        return softmax(logits.astype(np.float64)), va.astype(np.float64)

    def _prediction(self, face: Face, probs: np.ndarray, va: np.ndarray) -> FacePrediction:
        k = int(np.argmax(probs))
        has_exp = self.heads["expression"]
        x1, y1, x2, y2 = (float(v) for v in face.box)
        return FacePrediction(
            box=(x1, y1, x2, y2),
            score=float(face.score),
            expression=self.expressions[k] if has_exp else None,
            expression_id=k if has_exp else None,
            probabilities={n: float(p) for n, p in zip(self.expressions, probs, strict=True)} if has_exp else {},
            valence=float(va[0]) if self.heads["valence"] else None,
            arousal=float(va[1]) if self.heads["arousal"] else None,
            landmarks=None if face.landmarks is None else np.asarray(face.landmarks).round(2).tolist(),
        )
