"""int8 ONNX models: ONNX Runtime static quantization, calibrated on the model's own training images.

Settings follow ONNX Runtime's guidance for CPU inference: QDQ format, uint8 activations, int8 per-channel
weights, and ``reduce_range`` (7-bit weights) so one file is safe on every x86 CPU — without VNNI (most AVX2
machines) 8-bit products can saturate.

Only convolutions, fully connected layers and the ReLU/ReLU6 after them (which fold into the convolutions' int8
kernels) are quantized, and not the first convolution. On the FER+ EfficientNet-Lite0 model (1,000
FER2013Valid faces, fp32 accuracy 0.792), quantizing every supported op gave 0.715 — the residual ``Add``s and
the input's per-tensor uint8 range (three differently normalised channels in one scale) cost most of it —
while this selection gave 0.791. (With the export's constant "same" padding, quantizing everything costs only
0.26 points more than this selection on the full FER2013Valid, and is no faster on AVX2.)

The float model is exported to a temporary file first; the int8 file carries the same affectkit metadata (plus
``"quantized": "int8"``), so ``Predictor`` / ``predict`` / ``serve`` use it like any exported model.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_SIZE = 256
# Clip/Relu after a convolution fold into its quantized output range: ONNX Runtime then fuses the int8 kernel
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul", "Clip", "Relu"]


def calibration_faces(
    ckpt: str | Path, data: str | Path | None = None, n: int = CALIBRATION_SIZE, seed: int = 0
) -> np.ndarray:
    """``n`` normalised model inputs (float32, N x 3 x S x S) drawn (seeded) from the training part of a
    checkpoint's data — chosen as ``evaluate`` chooses parts: the run's saved split, else the dataset's own or a
    fresh split — through the checkpoint's preprocessing contract. ``data`` overrides the dataset."""
    from affectkit.evaluation import split_samples

    try:
        contract, pool = split_samples(ckpt, data, split="train")
    except ValueError as err:
        raise ValueError(f"{err}; pass --calibration DATA with training images") from None
    rng = np.random.default_rng(seed)
    faces = []
    for i in rng.permutation(len(pool))[:n]:
        try:
            faces.append(contract.to_array(pool[i].image, box=pool[i].box))
        except Exception:  # an unreadable image is left out of calibration, as training leaves it out
            continue
    if not faces:
        raise ValueError(f"{ckpt}: none of the chosen calibration images could be read")
    return contract.to_tensor(np.stack(faces))


class _Batches:
    """ONNX Runtime's CalibrationDataReader protocol over an in-memory array."""

    def __init__(self, x: np.ndarray, input_name: str, batch_size: int = 32):
        self._it = iter([{input_name: x[i : i + batch_size]} for i in range(0, len(x), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize_onnx(fp32_model: str | Path, out: str | Path, calibration: np.ndarray) -> Path:
    """Write the int8 version of an affectkit ONNX model to ``out``, calibrated on ``calibration`` (the
    model's normalised inputs). The affectkit metadata and its sidecar json are carried over."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    from affectkit.inference.backends import ONNX_METADATA_KEY

    fp32_model, out = Path(fp32_model), Path(out)
    proto = onnx.load(str(fp32_model))
    meta: dict[str, Any] = {}
    for entry in proto.metadata_props:
        if entry.key == ONNX_METADATA_KEY:
            meta = json.loads(entry.value)
    input_name = proto.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_model), str(prepared))  # fold/fuse and infer shapes first, as ORT advises
        # nodes are stored in topological order: the first Conv reads the (padded) input image
        first = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"][:1]
        quantize_static(
            str(prepared),
            str(out),
            _Batches(calibration, input_name),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=QUANTIZED_OPS,
            nodes_to_exclude=first,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    meta["quantized"] = "int8"
    q = onnx.load(str(out))
    del q.metadata_props[:]
    entry = q.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(meta)
    q.producer_name = "affectkit"
    onnx.save(q, str(out))
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
