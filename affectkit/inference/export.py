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
# Raised when the same checkpoint exports to a different (e.g. faster) graph, so cached exports are made anew.
EXPORT_VERSION = 2  # 2: constant "same" padding fused into the convolutions


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
    ``calibration_size`` training images of the checkpoint's run (or of the dataset ``calibration``), then
    compared with the float model on held-out images of the same data (``int8_check`` in its metadata; a
    warning when it changes many predictions, see ``affectkit.inference.quantize.check_int8``). Returns ``out``."""
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
    from affectkit.inference.quantize import calibration_faces, check_int8, quantize_onnx

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"{out}: the output file must end in .onnx")
    faces = calibration_faces(ckpt, data=calibration, n=calibration_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model(model, Path(tmp) / "fp32.onnx", **kw)
        quantize_onnx(fp32, out, faces)
        check_int8(ckpt, calibration, fp32, out)
    return out


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
    wrapped = _WithProbs(_static_same_padding(model, size)).eval()
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
    for node in proto.graph.node:
        # The exporter names an omitted constant_value as "": ONNX Runtime then does not fuse the Pad into the
        # Conv after it (its PadFusion requires that input to be a constant). Omitted trailing inputs may be left out.
        while node.op_type == "Pad" and node.input and not node.input[-1]:
            del node.input[-1]
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


def _static_same_padding(model, size: int):
    """``model`` with timm's TF-"same" convolutions (EfficientNet-Lite) padded by constants for ``size`` px inputs.

    ``Conv2dSame`` computes its padding from the input's size at run time; traced, that is a chain of Shape, Gather
    and Concat ops feeding a Pad, which ONNX Runtime cannot fold into the convolution (and, in an int8 model, a
    float island with a dequantize/quantize pair and layout transposes around it). The export's size is fixed,
    so the padding is known: a constant Pad is fused into the Conv. A copy is changed, never ``model``.
    """
    import copy

    import torch
    from timm.layers import Conv2dSame, get_same_padding

    names = [name for name, m in model.named_modules() if type(m) is Conv2dSame]
    if not names:
        return model
    model = copy.deepcopy(model).eval()
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str):
        def hook(module, args) -> None:  # returns None: the input is left as it is
            sizes[name] = tuple(args[0].shape[-2:])

        return hook

    hooks = [model.get_submodule(n).register_forward_pre_hook(record(n)) for n in names]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    for name in names:
        conv = model.get_submodule(name)
        (ih, iw), (kh, kw) = sizes[name], conv.weight.shape[-2:]
        ph = get_same_padding(ih, kh, conv.stride[0], conv.dilation[0])
        pw = get_same_padding(iw, kw, conv.stride[1], conv.dilation[1])
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, _PaddedConv(conv, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)))
    return model


def _PaddedConv(conv, pads: tuple[int, int, int, int]):
    import torch
    import torch.nn.functional as F

    class PaddedConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            c = self.conv
            return F.conv2d(F.pad(x, pads), c.weight, c.bias, c.stride, 0, c.dilation, c.groups)

    return PaddedConv()


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
