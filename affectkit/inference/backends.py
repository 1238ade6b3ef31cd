"""The two ways a Predictor runs its model: PyTorch (``_TorchBackend``) and ONNX Runtime (``_OnnxBackend``). Each maps
a normalised float32 batch (N, 3, S, S) to ``(logits (N, 8), va (N, 2))`` as numpy arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ONNX_METADATA_KEY = "affectkit"


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
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"),
        ):
            logits, va = self.model(t)
        return logits.float().cpu().numpy(), va.float().cpu().numpy()


class _OnnxBackend:
    name = "onnx"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        from affectkit.extras import require

        require("onnx", "the ONNX backend", only=("onnxruntime",))
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
