"""The list form of the config's ``data`` (several datasets in one run), checked item by item."""

from __future__ import annotations

import math
import re
from typing import Any

from affectkit.training.config_errors import _short, _suggest

# Dataset layouts (affectkit.data.formats.FORMATS; listed here so validating a config imports no reader).
FORMATS = (
    "ferplus",
    "affectnet_csv",
    "affectnet_npy",
    "fer2013_csv",
    "rafdb",
    "expw",
    "affwild2",
    "ckplus",
    "afew_va",
    "jaffe",
    "manifest",
    "image_folder",
)
SOURCE_KEYS = ("path", "format", "weight", "name")


def check_sources(items: list[Any]) -> list[Any]:
    """The list form of ``data``, each item checked (a ValueError names the item and the fix); mappings come
    back with every key of `SOURCE_KEYS`."""
    if not items:
        raise ValueError("an empty list names no dataset: give at least one folder")
    out: list[Any] = []
    for i, item in enumerate(items):
        where = f"data[{i}]"
        if isinstance(item, str) and item:
            out.append(item)
            continue
        if not isinstance(item, dict):
            raise ValueError(f"{where} is {_short(item)}: use a folder or a mapping {{path, format, weight, name}}")
        unknown = [k for k in item if k not in SOURCE_KEYS]
        if unknown:
            raise ValueError(f"{where} has unknown key {_short(unknown[0])}: use {', '.join(SOURCE_KEYS)}")
        path, fmt, weight, name = (item.get(k) for k in SOURCE_KEYS)
        if not isinstance(path, str) or not path:
            raise ValueError(f"{where} needs path: the dataset folder")
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(
                f"{where}.format {_short(fmt)} is unknown: use one of {', '.join(FORMATS)}"
                f"{_suggest(fmt, list(FORMATS))}"
            )
        if weight is not None and (
            isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0
        ):
            raise ValueError(f"{where}.weight {_short(weight)} is not a number > 0: give its share of the draws")
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name)):
            raise ValueError(f"{where}.name {_short(name)}: use letters, digits, '_', '.' or '-'")
        out.append({"path": path, "format": fmt, "weight": None if weight is None else float(weight), "name": name})
    weighted = [isinstance(x, dict) and x["weight"] is not None for x in out]
    if any(weighted) and not all(weighted):
        raise ValueError("weight is given for some datasets only: give every dataset a weight, or none")
    return out
