"""The common Sample record every reader yields, and the description of a read dataset."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    """One labelled face image.

    ``image`` is a path or an HxWxC uint8 RGB array. Labels that a dataset does not have (or that were left
    out, e.g. AffectNet's -2 valence) are ``None``. ``box`` is ``(x, y, w, h)`` in pixels: the image is cropped
    to it before use. ``soft_label`` is a length-8 distribution (e.g. FER+ votes) in AffectNet order.
    ``split`` is the split a dataset defines itself ("train", "val", "test") or ``None``.
    ``key`` is a stable identifier (path relative to the dataset root) used by split files.
    ``group`` is the subject, poser, clip or video the image comes from (``None`` when the dataset has no such
    unit): grouped splits keep every group in one part, so a person or clip never leaks into the test set.
    ``image`` is an array for datasets that ship pixels rather than files (FER2013's CSV).
    """

    image: str | Path | np.ndarray
    expression: int | None = None
    valence: float | None = None
    arousal: float | None = None
    landmarks: np.ndarray | None = None
    box: tuple[int, int, int, int] | None = None
    soft_label: np.ndarray | None = None
    split: str | None = None
    key: str = ""
    group: str | None = None


@dataclass
class Records:
    """What a reader found: the usable samples plus everything left out, with reasons."""

    samples: list[Sample]
    format: str
    root: Path
    # reason -> count, e.g. {"expression: 8 (none)": 12, "valence: -2 (invalid)": 3, "unreadable annotation": 1}
    excluded: Counter = field(default_factory=Counter)
    # (file, problem) for every bad file met, for warnings and summaries
    problems: list[tuple[str, str]] = field(default_factory=list)
    # what Sample.group names in this dataset ("subject", "video", ...), None if it has no groups
    group_kind: str | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def has_expression(self) -> bool:
        return any(s.expression is not None for s in self.samples)

    @property
    def has_va(self) -> bool:
        return any(s.valence is not None for s in self.samples)

    @property
    def has_groups(self) -> bool:
        return any(s.group is not None for s in self.samples)

    @property
    def defined_splits(self) -> set[str]:
        return {s.split for s in self.samples if s.split is not None}
