"""Several datasets in one training run: named sources, prefixed keys, a split per dataset, draw weights.

``data`` in a config is one folder (a string) or a list whose items are folders or ``{path, format, weight,
name}`` mappings. Each dataset is read with its own layout and split on its own (its own published splits and
groups, as `make_split` does for one dataset); the parts are then concatenated. Sample keys (and groups) are
prefixed with the dataset's name (``name/key``), so keys stay unique across datasets and the split file says where
each sample comes from. A dataset's name is ``name``, else its folder name (``-2``, ``-3``... on a clash).

``weight`` is a dataset's share of the training draws per epoch (normalised over the datasets): with weights,
training samples are drawn with replacement so that dataset ``d`` gets ``weight_d / sum(weight)`` of the draws
(class-balanced within the dataset with ``balanced_sampling``). Without weights the concatenation is shuffled
as one dataset (each dataset in proportion to its size). Weights are given for every dataset or for none.
Labels a dataset lacks are None and masked in the losses, so a dataset without valence/arousal trains only the
expression head on its samples, and vice versa.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from affectkit.data.records import Records, Sample


@dataclass(frozen=True)
class Source:
    name: str
    path: str
    format: str | None = None
    weight: float | None = None


def is_multi(data: Any) -> bool:
    """True for the list form of ``data`` (several datasets), even with one item."""
    return isinstance(data, (list, tuple))


def data_sources(data: Any, format: str | None = None) -> list[Source]:
    """The datasets ``data`` names (a folder or a list of folders / mappings), with unique names. A string
    item takes the config's top-level ``format``."""
    items = list(data) if is_multi(data) else [data]
    out: list[Source] = []
    taken: set[str] = set()
    for item in items:
        d: dict[str, Any] = {"path": item} if isinstance(item, (str, Path)) else dict(item)
        base = d.get("name") or Path(d["path"]).resolve().name or "data"
        name, i = str(base), 1
        while name in taken:
            i += 1
            name = f"{base}-{i}"
        taken.add(name)
        fmt, weight = d.get("format") or format, d.get("weight")
        out.append(
            Source(name, str(d["path"]), None if fmt is None else str(fmt), None if weight is None else float(weight))
        )
    return out


def _prefixed(records: Records, name: str) -> Records:
    samples = [
        replace(s, key=f"{name}/{s.key}", group=None if s.group is None else f"{name}/{s.group}")
        for s in records.samples
    ]
    return replace(records, samples=samples)


def read_sources(sources: list[Source], **read_kw: Any) -> list[Records]:
    """Each dataset read with its own layout, keys and groups prefixed with its name."""
    from affectkit.data import read_dataset

    return [_prefixed(read_dataset(s.path, format=s.format, **read_kw), s.name) for s in sources]


def combine(parts: list[Records]) -> Records:
    """One `Records` holding every dataset's samples (format ``"multi"`` unless there is one dataset)."""
    if len(parts) == 1:
        return parts[0]
    excluded: Counter = Counter()
    for r in parts:
        excluded.update(r.excluded)
    kinds = {r.group_kind for r in parts if r.group_kind}
    return Records(
        samples=[s for r in parts for s in r.samples],
        format="multi",
        root=Path(parts[0].root),
        excluded=excluded,
        problems=[p for r in parts for p in r.problems],
        group_kind=kinds.pop() if len(kinds) == 1 else ("group" if kinds else None),
    )


def multi_split(parts: list[Records], sources: list[Source], **split_kw: Any):
    """Each dataset split on its own by `make_split` (``split_kw``), the parts concatenated; ``info`` has
    ``datasets``: per dataset its path, format, part sizes and how it was split."""
    from affectkit.data.splits import SPLIT_NAMES, Split, make_split

    merged: dict[str, list[str]] = {n: [] for n in SPLIT_NAMES}
    info: dict[str, Any] = {"seed": split_kw.get("seed", 0), "source_format": "multi", "datasets": {}}
    groups: dict[str, list[str]] = {}
    for rec, src in zip(parts, sources, strict=True):
        sp = make_split(rec, **split_kw)
        for n in SPLIT_NAMES:
            merged[n] += sp[n]
            groups.setdefault(n, []).extend(sp.info.get("groups", {}).get(n, []))
        own = {k: v for k, v in sp.info.items() if k not in ("groups", "seed")}
        info["datasets"][src.name] = {
            "path": src.path,
            "format": rec.format,
            "weight": src.weight,
            "sizes": {n: len(sp[n]) for n in SPLIT_NAMES},
            **own,
        }
    if any(groups.values()):
        info["groups"] = {n: sorted(v) for n, v in groups.items()}
    return Split({n: sorted(v) for n, v in merged.items()}, info)


def source_index(samples: list[Sample], names: list[str]) -> np.ndarray:
    """Position in ``names`` of each sample's dataset (from its key prefix)."""
    pos = {n: i for i, n in enumerate(names)}
    return np.array([pos[s.key.split("/", 1)[0]] for s in samples], dtype=np.int64)


def draw_weights(samples: list[Sample], weights: dict[str, float], balanced: bool) -> np.ndarray:
    """Per-sample draw weights giving dataset ``d`` a ``weights[d] / sum`` share of the draws (each class of
    a dataset an equal part of its share with ``balanced``; samples without an expression form one class)."""
    names = list(weights)
    src = source_index(samples, names)
    exp = np.array([-1 if s.expression is None else s.expression for s in samples])
    total = sum(weights.values())
    out = np.zeros(len(samples))
    for i, n in enumerate(names):
        mine = src == i
        if not mine.any():
            continue
        share = weights[n] / total
        if balanced:
            classes, inverse, counts = np.unique(exp[mine], return_inverse=True, return_counts=True)
            out[mine] = share / (len(classes) * counts[inverse])
        else:
            out[mine] = share / mine.sum()
    return out
