"""Export a trained affect model to ONNX, with its preprocessing stored inside the model and beside it.

The ONNX graph takes ``input`` float32 (batch, 3, S, S), normalised as in training, with a dynamic batch axis,
and returns ``logits`` (batch, 8), ``va`` (batch, 2) and ``probs`` (batch, 8, softmax of logits).
``metadata_props["affectkit"]`` holds JSON: preprocess (mean, std, input_size, interpolation), backbone,
expressions, face_margin, opset; the same JSON is written to a sidecar ``<out stem>.json``.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from affectkit.labels import EXPRESSIONS
from affectkit.inference.faces import DEFAULT_MARGIN
from affectkit.inference.predictor import ONNX_METADATA_KEY


def export_onnx(ckpt: str | Path, out: str | Path, opset: int = 17) -> Path:
    """Export the model in a Lightning ``.ckpt`` (or a run folder's best) to ``out`` (.onnx) and write the sidecar json. Returns ``out``."""
    from affectkit.training.checkpoint import load_model

    ckpt = Path(ckpt)
    if ckpt.is_dir():  # a training run folder
        from affectkit.training.checkpoint import resolve_checkpoint

        ckpt = resolve_checkpoint(ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no such checkpoint")
    model, meta = load_model(ckpt)
    return export_model(model, out, face_margin=meta.get("face_margin", DEFAULT_MARGIN),
                        preprocess=meta.get("preprocess"), backbone=meta.get("backbone"), opset=opset)


def export_model(model, out: str | Path, face_margin: float = DEFAULT_MARGIN, preprocess: dict | None = None,
                 backbone: str | None = None, opset: int = 17) -> Path:
    """Export an in-memory AffectModel (see ``export_onnx``)."""
    import onnx
    import torch

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"{out}: the output file must end in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    preprocess = dict(preprocess or model.preprocess)
    size = int(preprocess["input_size"])
    meta = {
        "preprocess": {"mean": [float(v) for v in preprocess["mean"]], "std": [float(v) for v in preprocess["std"]],
                       "input_size": size, "interpolation": preprocess.get("interpolation", "bilinear")},
        "backbone": backbone or getattr(model, "backbone_name", ""),
        "expressions": list(EXPRESSIONS),
        "face_margin": float(face_margin),
        "opset": int(opset),
        "outputs": ["logits", "va", "probs"],
    }
    wrapped = _WithProbs(model).eval()
    dummy = torch.zeros(2, 3, size, size)
    with warnings.catch_warnings():
        # The TorchScript exporter is used on purpose: the dynamo one needs onnxscript, not a dependency.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped, (dummy,), str(out), dynamo=False, opset_version=opset, input_names=["input"],
            output_names=["logits", "va", "probs"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "va": {0: "batch"}, "probs": {0: "batch"}},
            do_constant_folding=True)
    proto = onnx.load(str(out))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(meta)
    proto.producer_name = "affectkit"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


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
