"""Stratified splits, dataset-defined splits, save/load round-trip, apply_split."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from affectkit.data.records import Records, Sample
from affectkit.data.splits import apply_split, load_split, make_split, save_split


def _records(counts: dict[int | None, int], fmt: str = "manifest", split_of=None) -> Records:
    samples = []
    for cls, n in counts.items():
        for i in range(n):
            key = f"c{cls}/{i:04d}.png"
            samples.append(Sample(image=key, expression=cls, valence=0.0 if cls is None else None, key=key,
                                  split=split_of(cls, i) if split_of else None))
    return Records(samples=samples, format=fmt, root=Path("/data"))


COUNTS = {0: 103, 1: 57, 2: 31, 3: 12, 4: 7, 5: 3, None: 20}


def test_stratified_proportions_within_one_sample() -> None:
    records = _records(COUNTS)
    split = make_split(records, test_size=0.2, val_size=0.1, seed=3)
    n = len(records)
    assert sorted(sum(split.values(), [])) == sorted(s.key for s in records.samples)  # a partition
    assert len(split["test"]) == round(n * 0.2) and len(split["val"]) == round(n * 0.1)
    cls_of = {s.key: s.expression for s in records.samples}
    for name, fraction in (("test", 0.2), ("val", 0.1), ("train", 0.7)):
        per_class = Counter(cls_of[k] for k in split[name])
        for cls, total in COUNTS.items():
            assert abs(per_class[cls] - total * fraction) <= 1, (name, cls, per_class[cls], total * fraction)


def test_reproducible_and_order_independent() -> None:
    records = _records(COUNTS)
    a = make_split(records, seed=7)
    shuffled = list(records.samples)
    random.Random(1).shuffle(shuffled)
    b = make_split(Records(samples=shuffled, format="manifest", root=Path("/data")), seed=7)
    c = make_split(records, seed=8)
    assert a == b
    assert a != c


def test_ferplus_defined_splits_used_as_given() -> None:
    records = _records({0: 20, 1: 10}, fmt="ferplus", split_of=lambda c, i: "val" if i % 5 == 0 else "train")
    split = make_split(records, seed=0)
    assert split.info["predefined"] is True
    assert len(split["val"]) == 6 and len(split["train"]) == 24 and split["test"] == []
    assert all(s.split == "val" for s in apply_split(records, split)["val"])


def test_affectnet_val_becomes_test_and_val_is_carved_from_train() -> None:
    records = _records({0: 60, 1: 30, 2: 10}, fmt="affectnet_npy",
                       split_of=lambda c, i: "val" if i < 2 else "train")
    split = make_split(records, val_size=0.1, seed=0)
    published_val = {s.key for s in records.samples if s.split == "val"}
    assert set(split["test"]) == published_val
    assert len(split["val"]) == 10 and not set(split["val"]) & published_val  # 10% of the whole dataset
    assert len(split["train"]) == 100 - 6 - 10
    val_classes = Counter(k.split("/")[0] for k in split["val"])
    assert val_classes == {"c0": 6, "c1": 3, "c2": 1}


def test_save_load_round_trip_and_tamper_check(tmp_path: Path) -> None:
    records = _records(COUNTS)
    split = make_split(records, seed=5)
    path = save_split(split, tmp_path / "split.json")
    loaded = load_split(path)
    assert loaded == split and loaded.info["seed"] == 5 and loaded.info["source_format"] == "manifest"
    payload = json.loads(path.read_text())
    assert payload["sizes"] == {k: len(v) for k, v in split.items()} and len(payload["keys_sha256"]) == 64
    payload["splits"]["test"].append("c0/9999.png")
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="hash"):
        load_split(path)


def test_apply_split_missing_keys() -> None:
    records = _records(COUNTS)
    split = make_split(records, seed=0)
    parts = apply_split(records, split)
    assert [s.key for s in parts["test"]] == split["test"]
    fewer = Records(samples=records.samples[5:], format="manifest", root=Path("/data"))
    with pytest.raises(ValueError, match="not found in the dataset"):
        apply_split(fewer, split)
    with pytest.warns(UserWarning):
        kept = apply_split(fewer, split, allow_missing=True)
    assert sum(map(len, kept.values())) == len(fewer)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="test_size"):
        make_split(_records(COUNTS), test_size=0.7, val_size=0.4)
    dup = _records({0: 3})
    dup.samples.append(dup.samples[0])
    with pytest.raises(ValueError, match="duplicate"):
        make_split(dup)
