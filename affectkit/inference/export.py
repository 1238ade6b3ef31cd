"""Export a trained affect model to ONNX, with its preprocessing contract stored inside the model and beside it.

The ONNX graph takes ``input`` float32 (batch, 3, S, S), normalised by the contract (``Preprocess.to_tensor``),
with a dynamic batch axis, and returns ``logits`` (batch, 8), ``va`` (batch, 2) and ``probs`` (batch, 8, softmax
of logits). ``metadata_props["affectkit"]`` holds JSON: ``preprocess`` (the full ``Preprocess`` record: input
size, mean, std, interpolation, colour mode, face margin, alignment, version), ``heads`` (which were trained),
backbone, expressions, face_margin, opset; the same JSON is written to a sidecar ``<out stem>.json``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from affectkit.extras import require
from affectkit.inference.backends import ONNX_METADATA_KEY
from affectkit.labels import EXPRESSIONS
from affectkit.preprocess import Preprocess

QUANTIZE = (None, "int8")


def export_onnx(
    ckpt: str | Path,
    out: str | Path,
    opset: int = 17,
    quantize: str | None = None,
    calibration: str | Path | None = None,
    calibration_size: int = 256,
) -> Path:
    """Export the model in a ``.ckpt`` (or a run folder's best) to ``out`` (.onnx) and write the sidecar json.

    ``quantize="int8"`` writes an int8 model instead (see ``affectkit.inference.quantize``), calibrated on
    ``calibration_size`` training images of the checkpoint's run (or of the dataset ``calibration``).
    Returns ``out``."""
    import tempfile

    from affectkit.training.checkpoint import load_model

    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {[q for q in QUANTIZE if q]} or None, got {quantize!r}")
    if calibration_size < 1:
        raise ValueError(f"calibration_size must be >= 1, got {calibration_size}")
    require("onnx", "ONNX export", only=("onnx",))  # before the model is loaded
    if quantize:
        require("onnx", "int8 quantization", only=("onnxruntime",))
    model, meta = load_model(ckpt)
    kw = dict(preprocess=meta["contract"], backbone=meta.get("backbone"), opset=opset, heads=meta["heads"])
    if quantize is None:
        return export_model(model, out, **kw)
    from affectkit.inference.quantize import calibration_faces, quantize_onnx

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"{out}: the output file must end in .onnx")
    faces = calibration_faces(ckpt, data=calibration, n=calibration_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model(model, Path(tmp) / "fp32.onnx", **kw)
        return quantize_onnx(fp32, out, faces)


def export_model(
    model,
    out: str | Path,
    face_margin: float | None = None,
    preprocess: Preprocess | None = None,
    backbone: str | None = None,
    opset: int = 17,
    heads: dict[str, bool] | None = None,
) -> Path:
    """Export an in-memory AffectModel (see ``export_onnx``); ``preprocess`` is the contract it was trained
    with (default: its backbone normalisation at its ``input_size``); ``face_margin`` overrides its margin."""
    require("onnx", "ONNX export", only=("onnx",))
    import onnx
    import torch

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"{out}: the output file must end in .onnx")
    preprocess = _contract(model, preprocess, face_margin)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = preprocess.input_size
    meta = {
        "preprocess": preprocess.to_dict(),
        "heads": {k: bool((heads or {}).get(k, True)) for k in ("expression", "valence", "arousal")},
        "backbone": backbone or getattr(model, "backbone_name", ""),
        "expressions": list(EXPRESSIONS),
        "face_margin": preprocess.face_margin,
        "opset": int(opset),
        "outputs": ["logits", "va", "probs"],
    }
    wrapped = _WithProbs(model).eval()
    dummy = torch.zeros(2, 3, size, size)
    with warnings.catch_warnings():
        # The TorchScript exporter is used on purpose: the dynamo one needs onnxscript, not a dependency.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (dummy,),
            str(out),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits", "va", "probs"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "va": {0: "batch"}, "probs": {0: "batch"}},
            do_constant_folding=True,
        )
    proto = onnx.load(str(out))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(meta)
    proto.producer_name = "affectkit"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _contract(model, preprocess: Preprocess | dict | None, face_margin: float | None) -> Preprocess:
    """The contract stored with the export: ``preprocess`` (a ``Preprocess`` or its dict; None: a bare model's
    backbone normalisation at its own input size), with ``face_margin`` when given."""
    import dataclasses

    if preprocess is None:
        preprocess = Preprocess.from_config({}, model.preprocess)
    if isinstance(preprocess, dict):
        preprocess = Preprocess.from_dict(preprocess)
    if face_margin is not None:
        preprocess = dataclasses.replace(preprocess, face_margin=face_margin)
    return preprocess


def read_onnx_metadata(path: str | Path) -> dict:
    """The affectkit metadata stored in an exported model (reads the sidecar-free ONNX file itself)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == ONNX_METADATA_KEY:
            return json.loads(entry.value)
    raise ValueError(f"{path}: no affectkit metadata in this ONNX model")


def _WithProbs(model):
    import torch

    class WithProbs(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            logits, va = self.inner(x)
            return logits, va, torch.softmax(logits, dim=1)

    return WithProbs(model)
