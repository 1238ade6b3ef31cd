"""Using a trained model: face detection, Predictor, batch/video prediction, ONNX export, web demo.

Imports are lazy so that ``import affectkit.inference`` loads neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Face": "faces",
    "FaceDetector": "faces",
    "align_face": "faces",
    "whole_image_face": "faces",
    "Predictor": "predictor",
    "FacePrediction": "predictor",
    "read_image": "predictor",
    "UnreadableImageError": "predictor",
    "run_predict": "video",
    "expand_inputs": "inputs",
    "iter_frames": "video_io",
    "draw_predictions": "draw",
    "ROW_FIELDS": "outputs",
    "export_onnx": "export",
    "export_model": "export",
    "read_onnx_metadata": "export",
    "serve": "server",
    "make_server": "server",
    "serve_in_thread": "server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
