"""Train/val/test splits as lists of sample keys: made (stratified, seeded), saved, reloaded, applied.

Conventions:

- A split maps "train", "val", "test" to sorted lists of ``Sample.key`` (all three names always present).
- Without dataset-defined splits: stratified by expression (samples without one form their own group);
  ``test_size`` and ``val_size`` are fractions of the whole dataset, val carved from what is not test. Per
  group the counts are proportional to within one sample, and totals are ``round(N * size)``. Keys are sorted
  before a seeded shuffle, so the result depends on the seed and the key set only, not on input order.
- With dataset-defined splits (``Records.defined_splits``) they are used as given:
  FER+ Train/Valid/Test -> train/val/test (the shared FER+ copy has no test split: "test" is then empty).
  AffectNet (both readers) train/val -> its published validation set becomes "test" (AffectNet's test set is
  not public) and "val" is carved from train, stratified, with ``val_size`` of the whole dataset.
  Aff-Wild2 likewise (its test labels are not public). Any other format: the given splits are kept; if "val" is
  missing it is carved from train the same way.
- Grouped splits (``split_by``): samples carrying a ``group`` (CK+ subject, JAFFE poser, AFEW-VA clip, Aff-Wild2
  video, ExpW photo) are split by whole groups, so no person or clip is in two parts. ``"auto"`` (default)
  groups whenever the dataset has groups, ``"group"`` requires them, ``"none"`` splits image by image as before.
  Grouped parts come from scikit-learn's ``StratifiedGroupKFold`` (stratified by expression where the groups
  allow; sizes are then close to, not exactly, the fractions): a part of fraction f takes m of k folds with
  m/k nearest f (k <= 20). Above 2,000 groups ``GroupShuffleSplit`` (f of the groups, shuffled) is used
  instead, for speed. Samples without a group are each their own group. The split file lists each part's
  groups.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from affectkit.data.group_split import grouped_split, groups_info, warn_shared_groups
from affectkit.data.records import Records, Sample
from affectkit.io import atomic_write

SPLIT_NAMES = ("train", "val", "test")
SPLIT_BY = ("auto", "group", "none")
_TEST_FROM_VAL_FORMATS = {"affectnet_npy", "affectnet_csv", "affwild2"}
FILE_VERSION = 1


class Split(dict):
    """``{"train": [...], "val": [...], "test": [...]}`` plus ``info`` (seed, sizes, source format...)."""

    def __init__(self, parts: dict[str, list[str]], info: dict | None = None):
        super().__init__({name: list(parts.get(name, [])) for name in SPLIT_NAMES})
        self.info = dict(info or {})


def _samples(records: Records | Iterable[Sample]) -> list[Sample]:
    return list(records.samples) if isinstance(records, Records) else list(records)


def _check_unique(samples: Sequence[Sample]) -> None:
    seen: set[str] = set()
    dupes = []
    for s in samples:
        if not s.key:
            raise ValueError(
                f"sample with image {s.image if not isinstance(s.image, np.ndarray) else 'array'} "
                f"has no key; splits need Sample.key"
            )
        if s.key in seen:
            dupes.append(s.key)
        seen.add(s.key)
    if dupes:
        raise ValueError(f"{len(dupes)} duplicate sample key(s), e.g. {', '.join(dupes[:3])}; keys must be unique")


def _allocate(counts: np.ndarray, fraction: float, caps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-group counts ~ counts * fraction summing to round(total * fraction), each within 1 of its share."""
    exact = counts * fraction
    alloc = np.minimum(np.floor(exact).astype(int), caps)
    wanted = int(round(counts.sum() * fraction))
    remainder = exact - np.floor(exact)
    # Largest remainder first; ties broken by the seeded rng so no group is always favoured.
    order = np.lexsort((rng.random(len(counts)), -remainder))
    for i in order:
        if alloc.sum() >= wanted:
            break
        if alloc[i] < caps[i] and alloc[i] < np.ceil(exact[i]):
            alloc[i] += 1
    return alloc


def _stratified(keys_by_group: dict, sizes: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Split each group's sorted keys by ``sizes`` (fractions of all keys); the rest goes to "train"."""
    rng = np.random.default_rng(seed)
    groups = sorted(keys_by_group, key=lambda g: (g is None, g if g is not None else 0))
    shuffled = {}
    for g in groups:
        keys = sorted(keys_by_group[g])
        shuffled[g] = [keys[i] for i in rng.permutation(len(keys))]
    counts = np.array([len(shuffled[g]) for g in groups])
    caps = counts.copy()
    out: dict[str, list[str]] = {"train": []}
    taken = np.zeros(len(groups), dtype=int)
    for name, fraction in sizes.items():
        alloc = _allocate(counts, fraction, caps - taken, rng)
        out[name] = [k for gi, g in enumerate(groups) for k in shuffled[g][taken[gi] : taken[gi] + alloc[gi]]]
        taken += alloc
    out["train"] = [k for gi, g in enumerate(groups) for k in shuffled[g][taken[gi] :]]
    return {name: sorted(keys) for name, keys in out.items()}


def _use_groups(samples: Sequence[Sample], split_by: str, fmt: str | None) -> bool:
    if split_by not in SPLIT_BY:
        raise ValueError(f"invalid value {split_by!r} (split_by): use one of {', '.join(SPLIT_BY)}")
    has_groups = any(s.group is not None for s in samples)
    if split_by == "group" and not has_groups:
        raise ValueError(
            f"no groups in the dataset (split_by: group): {fmt or 'these samples'} names no subject, "
            f"clip or video per image; use --split-by auto or none"
        )
    return has_groups and split_by != "none"


def _group(samples: Iterable[Sample]) -> dict:
    groups: dict = defaultdict(list)
    for s in samples:
        groups[s.expression].append(s.key)
    return groups


def _by_defined_split(samples: Sequence[Sample], fmt: str | None) -> dict[str, list[Sample]]:
    """Samples per the dataset's own split names; AffectNet's and Aff-Wild2's published "val" becomes "test"."""
    unassigned = [s.key for s in samples if s.split is None]
    if unassigned:
        raise ValueError(f"{len(unassigned)} sample(s) have no split while others do (e.g. {unassigned[0]})")
    by_split: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_split[s.split].append(s)  # type: ignore[index]
    unknown = set(by_split) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"unknown split name(s) {', '.join(sorted(unknown))}; expected train, val, test")
    if fmt in _TEST_FROM_VAL_FORMATS and "test" not in by_split:
        by_split["test"] = by_split.pop("val", [])
    return by_split


def make_split(
    records: Records | Iterable[Sample],
    test_size: float = 0.2,
    val_size: float = 0.1,
    seed: int = 0,
    split_by: str = "auto",
) -> Split:
    """Stratified, seeded train/val/test split of sample keys; dataset-defined splits are honoured.

    ``split_by``: "auto" (by group when samples carry groups), "group" or "none" (image by image).
    See the module docstring for the rules. Returns a ``Split`` (a dict) whose ``info`` records how it was made.
    """
    if not (0 <= test_size < 1 and 0 <= val_size < 1 and test_size + val_size < 1):
        raise ValueError(f"test_size ({test_size}) and val_size ({val_size}) must be in [0, 1) with sum < 1")
    samples = _samples(records)
    if not samples:
        raise ValueError("cannot split an empty dataset")
    _check_unique(samples)
    fmt = records.format if isinstance(records, Records) else None
    defined = {s.split for s in samples if s.split is not None}
    grouped = _use_groups(samples, split_by, fmt)
    info: dict = {
        "seed": seed,
        "source_format": fmt,
        "test_size": test_size,
        "val_size": val_size,
        "split_by": split_by,
        "grouped": grouped,
    }

    def carve(members: list[Sample], sizes: dict[str, float]) -> dict[str, list[str]]:
        return grouped_split(members, sizes, seed) if grouped else _stratified(_group(members), sizes, seed)

    if not defined:
        parts = carve(samples, {"test": test_size, "val": val_size})
        info["predefined"] = False
        return _with_groups(Split(parts, info), samples)

    by_split = _by_defined_split(samples, fmt)
    parts = {name: sorted(s.key for s in members) for name, members in by_split.items()}
    if "val" not in by_split:
        train = by_split.get("train", [])
        if not train:
            raise ValueError("the dataset defines splits but no 'train' split to carve 'val' from")
        fraction = min(val_size * len(samples) / len(train), 0.99)
        carved = carve(train, {"val": fraction})
        parts["train"], parts["val"] = carved["train"], carved["val"]
        info["val_carved_from_train"] = True
    info["predefined"] = True
    split = _with_groups(Split(parts, info), samples)
    if "groups" in split.info:
        published = {name: v for name, v in split.info["groups"].items() if name != "val" or "val" in by_split}
        warn_shared_groups(published)
    return split


def defined_part(records: Records, name: str) -> list[str] | None:
    """Keys of the dataset's own split part ``name`` as `make_split` maps it (AffectNet's and Aff-Wild2's
    published validation set is "test"), without needing the other parts: evaluating a folder that holds only
    FER+'s ``FER2013Test`` needs no train split. None when the dataset does not define that part itself."""
    samples = _samples(records)
    defined = {s.split for s in samples if s.split is not None}
    if not defined:
        return None
    source: str | None = name
    if records.format in _TEST_FROM_VAL_FORMATS and "test" not in defined:
        source = {"test": "val", "val": None}.get(name, name)  # their "val" is carved from train
    keys = sorted(s.key for s in samples if source is not None and s.split == source)
    return keys or None


def _with_groups(split: Split, samples: Sequence[Sample]) -> Split:
    if any(s.group is not None for s in samples):
        split.info["groups"] = groups_info(samples, split)
    return split


def _keys_hash(split: dict[str, list[str]]) -> str:
    digest = hashlib.sha256()
    for name in SPLIT_NAMES:
        for key in split.get(name, []):
            digest.update(f"{name}\t{key}\n".encode())
    return digest.hexdigest()


def save_split(split: dict[str, list[str]], path: str | Path) -> Path:
    """Write a split as JSON: version, seed, source format, sizes, a SHA-256 of the keys, and the keys."""
    path = Path(path)
    info = dict(getattr(split, "info", {}))
    payload = {
        "version": FILE_VERSION,
        "seed": info.pop("seed", None),
        "source_format": info.pop("source_format", None),
        "sizes": {name: len(split.get(name, [])) for name in SPLIT_NAMES},
        "keys_sha256": _keys_hash(split),
        "groups": info.pop("groups", None),
        "info": info,
        "splits": {name: list(split.get(name, [])) for name in SPLIT_NAMES},
    }
    return atomic_write(path, json.dumps(payload, indent=1))


def load_split(path: str | Path) -> Split:
    """Read a split saved by ``save_split``; the key hash is checked so an edited file is caught."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        parts = payload["splits"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a split file ({err})") from err
    split = Split(
        parts, {**payload.get("info", {}), "seed": payload.get("seed"), "source_format": payload.get("source_format")}
    )
    if payload.get("groups") is not None:
        split.info["groups"] = payload["groups"]
    expected = payload.get("keys_sha256")
    if expected and expected != _keys_hash(split):
        raise ValueError(f"{path}: key hash mismatch: the split file was edited or is corrupt")
    return split


def apply_split(
    records: Records | Iterable[Sample],
    split: dict[str, list[str]],
    allow_missing: bool = False,
) -> dict[str, list[Sample]]:
    """Samples of each split, in the split's key order.

    Keys absent from the records raise ValueError (a split made for another dataset, or images dropped since);
    ``allow_missing=True`` drops them instead (with a warning).
    """
    by_key = {s.key: s for s in _samples(records)}
    out: dict[str, list[Sample]] = {}
    missing: dict[str, list[str]] = {}
    for name in SPLIT_NAMES:
        keys = split.get(name, [])
        absent = [k for k in keys if k not in by_key]
        if absent:
            missing[name] = absent
        out[name] = [by_key[k] for k in keys if k in by_key]
    if missing:
        detail = "; ".join(f"{len(v)} of '{n}' (e.g. {', '.join(v[:3])})" for n, v in missing.items())
        message = f"split keys not found in the dataset: {detail}. Was the split made for another dataset?"
        if not allow_missing:
            raise ValueError(message)
        warnings.warn(message + " Dropping them.", stacklevel=2)
    return out
