"""Grouped splits: parts made of whole groups (subject, poser, clip, video, photo), so no person or clip is in
two parts; the rules are in the ``splits`` module docstring."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from affectkit.data.records import Sample

_MAX_FOLDS = 20
# StratifiedGroupKFold costs ~1 ms per group and fold; beyond this many groups (ExpW's photos) a shuffled group
# split (GroupShuffleSplit) is used: with that many small groups it is near-stratified and near-exact anyway.
_MAX_STRATIFIED_GROUPS = 2000


def _group_of(s: Sample) -> str:
    return s.group if s.group is not None else f"\0{s.key}"  # ungrouped: a group of its own


def _folds(share: float, n_groups: int) -> tuple[int, int]:
    """(k, m): take m of k folds, m/k nearest ``share``; the fewest folds among equally near ones."""
    best = None
    for k in range(2, min(_MAX_FOLDS, n_groups) + 1):
        m = min(max(1, round(share * k)), k - 1)
        error = abs(m / k - share)
        if best is None or error < best[0] - 1e-9:
            best = (error, k, m)
    return best[1], best[2]  # type: ignore[index]


def _take_groups(samples: list[Sample], share: float, seed: int) -> np.ndarray:
    """Mask of ``samples`` (sorted by key) forming whole groups with about ``share`` of them, stratified."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.array([_group_of(s) for s in samples])
    n_groups = len(np.unique(groups))
    if share <= 0:
        return np.zeros(len(samples), dtype=bool)
    if n_groups < 2:
        raise ValueError(
            f"only {n_groups} group to split (split_by): a grouped split needs at least 2 groups; "
            f"use --split-by none to split image by image"
        )
    if n_groups > _MAX_STRATIFIED_GROUPS:
        from sklearn.model_selection import GroupShuffleSplit

        _, held = next(
            GroupShuffleSplit(n_splits=1, test_size=min(share, 0.95), random_state=seed).split(
                np.zeros(len(samples)), groups=groups
            )
        )
        mask = np.zeros(len(samples), dtype=bool)
        mask[held] = True
        return mask
    y = np.array([s.expression if s.expression is not None else -1 for s in samples])
    k, m = _folds(min(share, 0.95), n_groups)
    if (np.unique(y, return_counts=True)[1] < k).all():
        y = np.zeros_like(y)  # every class smaller than the fold count: no stratification possible
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    mask = np.zeros(len(samples), dtype=bool)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")  # small classes: best effort
        for fold, (_, held) in enumerate(cv.split(np.zeros(len(samples)), y, groups)):
            if fold < m:
                mask[held] = True
    return mask


def grouped_split(samples: Iterable[Sample], sizes: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Like ``splits._stratified`` but by whole groups; ``sizes`` are fractions of all the samples given."""
    remaining = sorted(samples, key=lambda s: s.key)
    total = len(remaining)
    out: dict[str, list[str]] = {}
    for i, (name, fraction) in enumerate(sizes.items()):
        share = fraction * total / len(remaining) if remaining else 0.0
        left = len({_group_of(s) for s in remaining})
        if i > 0 and share > 0 and left < 2:  # the earlier parts took all groups but one: train keeps it
            warnings.warn(
                f"the {name} part is empty: only {left} group is left after the earlier parts, and train keeps it "
                f"(a dataset this small needs --split-by none, or a smaller test_size)",
                stacklevel=3,
            )
            out[name] = []
            continue
        mask = _take_groups(remaining, share, seed + i)
        out[name] = sorted(s.key for s, taken in zip(remaining, mask, strict=True) if taken)
        remaining = [s for s, taken in zip(remaining, mask, strict=True) if not taken]
    out["train"] = sorted(s.key for s in remaining)
    return out


def groups_info(samples: Sequence[Sample], parts: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each part's groups, as the split file records them."""
    group_of = {s.key: s.group for s in samples}
    return {name: sorted({g for k in keys if (g := group_of.get(k)) is not None}) for name, keys in parts.items()}


def warn_shared_groups(groups: dict[str, list[str]]) -> None:
    seen: dict[str, str] = {}
    shared = []
    for name, members in groups.items():
        for g in members:
            if seen.setdefault(g, name) != name:
                shared.append(g)
    if shared:
        warnings.warn(
            f"{len(shared)} group(s) are in more than one of the dataset's own split parts "
            f"(e.g. {', '.join(shared[:3])}); its published split is kept as it is",
            stacklevel=3,
        )
