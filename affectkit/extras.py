"""Optional dependencies: each feature that needs one names the pip extra that installs it (pyproject.toml).

An absent one is a `MissingExtraError` (an ImportError) whose message is the one line a user needs, e.g.
``affectkit serve needs fastapi (not installed): pip install affectkit[serve]``; the CLI prints it as is.
"""

from __future__ import annotations

import importlib.util

# extra -> {distribution: import names (any one will do)}
EXTRAS: dict[str, dict[str, tuple[str, ...]]] = {
    "onnx": {"onnx": ("onnx",), "onnxruntime": ("onnxruntime",)},
    "serve": {"fastapi": ("fastapi",), "uvicorn": ("uvicorn",), "python-multipart": ("python_multipart", "multipart")},
    "video": {"opencv-python-headless": ("cv2",)},
    "faces": {"facenet-pytorch": ("facenet_pytorch",), "requests": ("requests",)},
}
# facenet-pytorch is installed without its dependencies, so pip never replaces the torch build in use
FACES_NO_DEPS = "pip install --no-deps facenet-pytorch==2.5.3"


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def missing(extra: str, only: tuple[str, ...] | None = None) -> list[str]:
    """The distributions of ``extra`` (or just those in ``only``) that are not installed."""
    return [
        dist
        for dist, names in EXTRAS[extra].items()
        if (only is None or dist in only) and not any(_installed(n) for n in names)
    ]


def install_hint(extra: str) -> str:
    hint = f"pip install affectkit[{extra}]"
    return f"{hint} && {FACES_NO_DEPS}" if extra == "faces" else hint


def require(extra: str, purpose: str, only: tuple[str, ...] | None = None, instead: str = "") -> None:
    """Raise `MissingExtraError` unless ``extra``'s packages (or those in ``only``) are installed; ``instead``
    names a way around the feature, added to the message."""
    gone = missing(extra, only)
    if gone:
        raise MissingExtraError(
            f"{purpose} needs {', '.join(gone)} (not installed): {install_hint(extra)}"
            + (f"; or {instead}" if instead else "")
        )
