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
``"quantized": "int8"``), so ``Predictor`` / ``predict`` / ``serve`` use it like any exported model. Both files
are then compared on held-out faces (``check_int8``): quantizing a model that has barely trained changes many of
its answers, and the export says so instead of leaving the user to find out.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_SIZE = 256
# The int8 file is checked against its float model on this many held-out faces; below MIN_SAME_EXPRESSION of
# them keeping their expression it is flagged (the shipped FER+ model keeps 97 %, 2-epoch synthetic runs 52-70 %).
CHECK_SIZE = 256
MIN_SAME_EXPRESSION = 0.9
# Clip/Relu after a convolution fold into its quantized output range: ONNX Runtime then fuses the int8 kernel
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul", "Clip", "Relu"]


def calibration_faces(
    ckpt: str | Path, data: str | Path | None = None, n: int = CALIBRATION_SIZE, seed: int = 0
) -> np.ndarray:
    """``n`` normalised model inputs (float32, N x 3 x S x S) drawn (seeded) from the training part of a
    checkpoint's data — chosen as ``evaluate`` chooses parts: the run's saved split, else the dataset's own or a
    fresh split — through the checkpoint's preprocessing contract. ``data`` overrides the dataset."""
    try:
        faces, _ = part_faces(ckpt, data, "train", n, seed)
    except ValueError as err:
        raise ValueError(f"{err}; pass --calibration DATA with training images") from None
    return faces


def part_faces(
    ckpt: str | Path, data: str | Path | None, split: str, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(model inputs, expression labels with -1 where unknown) of ``n`` faces drawn (seeded) from ``split`` of a
    checkpoint's data, as :func:`calibration_faces` draws them; unreadable images are left out."""
    from affectkit.evaluation import split_samples

    contract, pool = split_samples(ckpt, data, split=split)
    rng = np.random.default_rng(seed)
    faces, labels = [], []
    for i in rng.permutation(len(pool))[:n]:
        try:
            faces.append(contract.to_array(pool[i].image, box=pool[i].box))
        except Exception:  # an unreadable image is left out, as training leaves it out
            continue
        labels.append(-1 if pool[i].expression is None else pool[i].expression)
    if not faces:
        raise ValueError(f"{ckpt}: none of the chosen {split} images could be read")
    return contract.to_tensor(np.stack(faces)), np.asarray(labels)


def compare_int8(fp32_model: str | Path, int8_model: str | Path, x: np.ndarray, labels: np.ndarray) -> dict:
    """How far the int8 model's answers move from the float model's on faces ``x`` (model inputs) it was not
    calibrated on: the share of faces whose expression (arg max) stays, the largest and mean absolute change of
    a probability, the largest valence/arousal change (when those heads were trained), and both models'
    accuracy where ``labels`` (-1: unknown) are given. Run on ONNX Runtime, as the files will be."""
    from affectkit.inference.backends import _OnnxBackend
    from affectkit.inference.predictor import softmax

    fp32, int8 = _OnnxBackend(fp32_model), _OnnxBackend(int8_model)

    def run(backend) -> tuple[np.ndarray, np.ndarray]:  # 32 faces at a time: bounded memory at any input size
        parts = [backend(x[i : i + 32]) for i in range(0, len(x), 32)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    (lf, vf), (lq, vq) = run(fp32), run(int8)
    pf, pq = softmax(lf), softmax(lq)
    check: dict[str, Any] = {
        "n": len(x),
        "same_expression": round(float(np.mean(pf.argmax(1) == pq.argmax(1))), 4),
        "max_prob_change": round(float(np.abs(pf - pq).max()), 4),
        "mean_prob_change": round(float(np.abs(pf - pq).mean()), 5),
    }
    heads = fp32.meta.get("heads") or {}
    trained_va = [i for i, k in enumerate(("valence", "arousal")) if heads.get(k)]
    if trained_va:
        check["max_va_change"] = round(float(np.abs(vf - vq)[:, trained_va].max()), 4)
    known = labels >= 0
    if known.any():
        check["n_labelled"] = int(known.sum())
        check["accuracy_fp32"] = round(float(np.mean(pf[known].argmax(1) == labels[known])), 4)
        check["accuracy_int8"] = round(float(np.mean(pq[known].argmax(1) == labels[known])), 4)
    return check


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
    write_metadata(out, meta)
    return out


def write_metadata(path: str | Path, meta: dict[str, Any]) -> None:
    """Store ``meta`` as an ONNX file's affectkit metadata and in its sidecar json."""
    import onnx

    from affectkit.inference.backends import ONNX_METADATA_KEY

    path = Path(path)
    q = onnx.load(str(path))
    del q.metadata_props[:]
    entry = q.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(meta)
    q.producer_name = "affectkit"
    onnx.save(q, str(path))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def check_int8(
    ckpt: str | Path, data: str | Path | None, fp32_model: str | Path, int8_model: str | Path, n: int = CHECK_SIZE
) -> dict[str, Any] | None:
    """Compare a fresh int8 file with its float model (:func:`compare_int8`) on up to ``n`` held-out faces of the
    checkpoint's data (its validation part, else its test part), store the figures as ``int8_check`` in the int8
    file's metadata and warn when fewer than ``MIN_SAME_EXPRESSION`` of the faces keep their expression.
    Returns the figures, or None when the data has no held-out faces."""
    for split in ("val", "test"):
        try:
            x, labels = part_faces(ckpt, data, split, n)
            break
        except ValueError:
            continue
    else:
        return None
    from affectkit.inference.export import read_onnx_metadata

    check = {"split": split, **compare_int8(fp32_model, int8_model, x, labels)}
    meta = read_onnx_metadata(int8_model)
    meta["int8_check"] = check
    write_metadata(int8_model, meta)
    if check["same_expression"] < MIN_SAME_EXPRESSION:
        warnings.warn(
            f"{int8_model}: the int8 model changes the predicted expression of "
            f"{1 - check['same_expression']:.1%} of {check['n']} held-out faces (largest probability change "
            f"{check['max_prob_change']:.2f}): it is no faithful copy of the float model (a barely trained model's "
            "near-equal probabilities flip easily); use the fp32 export, or quantize after training longer",
            stacklevel=2,
        )
    return check
