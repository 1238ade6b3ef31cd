"""Shared pieces of the torchvision backbone families."""

from __future__ import annotations

from affectkit.models._registry import IMAGENET_MEAN, IMAGENET_STD


def tv_preprocess() -> dict:
    return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_size": 224, "interpolation": "bilinear"}
