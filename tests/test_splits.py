"""Stratified splits, dataset-defined splits, save/load round-trip, apply_split."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affectkit.data.records import Records, Sample
from affectkit.data.splits import apply_split, load_split, make_split, save_split


def _records(counts: dict[int | None, int], fmt: str = "manifest", split_of=None) -> Records:
    samples = []
    for cls, n in counts.items():
        for i in range(n):
            key = f"c{cls}/{i:04d}.png"
            samples.append(
                Sample(
                    image=key,
                    expression=cls,
                    valence=0.0 if cls is None else None,
                    key=key,
                    split=split_of(cls, i) if split_of else None,
                )
            )
    return Records(samples=samples, format=fmt, root=Path("/data"))


COUNTS = {0: 103, 1: 57, 2: 31, 3: 12, 4: 7, 5: 3, None: 20}


def test_stratified_proportions_within_one_sample() -> None:
    records = _records(COUNTS)
    split = make_split(records, test_size=0.2, val_size=0.1, seed=3)
    n = len(records)
    assert sorted(k for keys in split.values() for k in keys) == sorted(s.key for s in records.samples)  # a partition
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
    records = _records({0: 60, 1: 30, 2: 10}, fmt="affectnet_npy", split_of=lambda c, i: "val" if i < 2 else "train")
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


# ------------------------------------------------------------------------------------------- grouped splits


def _grouped_records(sizes: list[int], classes: int = 3, fmt: str = "ckplus", split_of=None) -> Records:
    """Group g holds sizes[g] images; expressions cycle within a group so groups mix classes."""
    samples = []
    for g, n in enumerate(sizes):
        for i in range(n):
            key = f"S{g:03d}/{i:03d}.png"
            samples.append(
                Sample(
                    image=key,
                    expression=(g + i) % classes,
                    key=key,
                    group=f"S{g:03d}",
                    split=split_of(g) if split_of else None,
                )
            )
    return Records(samples=samples, format=fmt, root=Path("/data"))


def _part_groups(records: Records, split) -> dict[str, set]:
    group_of = {s.key: s.group for s in records.samples}
    return {name: {group_of[k] for k in keys} for name, keys in split.items()}


def _assert_no_shared_group(groups: dict[str, set]) -> None:
    assert (
        not groups["train"] & groups["test"]
        and not groups["train"] & groups["val"]
        and not groups["val"] & groups["test"]
    ), groups


def test_grouped_split_keeps_groups_whole_and_records_them(tmp_path: Path) -> None:
    records = _grouped_records([12] * 40)
    split = make_split(records, test_size=0.2, val_size=0.1, seed=0)
    groups = _part_groups(records, split)
    _assert_no_shared_group(groups)
    assert sorted(k for keys in split.values() for k in keys) == sorted(s.key for s in records.samples)
    assert len(groups["test"]) == 8 and len(groups["val"]) == 4  # equal groups: exact fractions of groups
    assert split.info["grouped"] is True and split.info["split_by"] == "auto"
    assert {k: set(v) for k, v in split.info["groups"].items()} == groups
    loaded = load_split(save_split(split, tmp_path / "split.json"))
    assert loaded == split and {k: set(v) for k, v in loaded.info["groups"].items()} == groups
    assert json.loads((tmp_path / "split.json").read_text())["groups"]["test"] == sorted(groups["test"])


def test_grouped_split_is_stratified_where_groups_allow() -> None:
    # Each group holds one class only: a grouped split can still give every part each class.
    samples = [
        Sample(image=f"{g}/{i}", expression=g % 4, key=f"{g}/{i}", group=str(g)) for g in range(80) for i in range(5)
    ]
    split = make_split(Records(samples=samples, format="jaffe", root=Path("/d")), seed=1)
    for name in ("train", "val", "test"):
        classes = Counter(int(k.split("/")[0]) % 4 for k in split[name])
        assert set(classes) == {0, 1, 2, 3}, (name, classes)
        assert max(classes.values()) - min(classes.values()) <= 10, (name, classes)


def test_split_by_none_and_group_and_bad_value() -> None:
    records = _grouped_records([10] * 20)
    per_image = make_split(records, seed=0, split_by="none")
    groups = _part_groups(records, per_image)
    assert groups["train"] & groups["test"]  # image by image: groups do leak
    assert per_image.info["grouped"] is False and "groups" in per_image.info
    plain = _records(COUNTS)
    assert make_split(plain, seed=0) == make_split(plain, seed=0, split_by="none")  # no groups: as before
    with pytest.raises(ValueError, match=r"no groups in the dataset \(split_by: group\)"):
        make_split(plain, split_by="group")
    with pytest.raises(ValueError, match=r"invalid value 'subject' \(split_by\)"):
        make_split(records, split_by="subject")
    with pytest.raises(ValueError, match="at least 2 groups"):
        make_split(_grouped_records([30]), seed=0)


def test_grouped_val_carved_from_published_train_and_shared_groups_warned() -> None:
    # Aff-Wild2: published val becomes test, val is carved from train by whole videos.
    records = _grouped_records([6] * 30, fmt="affwild2", split_of=lambda g: "val" if g < 5 else "train")
    split = make_split(records, val_size=0.1, seed=0)
    groups = _part_groups(records, split)
    assert groups["test"] == {f"S{g:03d}" for g in range(5)}
    assert groups["val"] and not groups["val"] & groups["train"]
    leaky = _grouped_records([4] * 10, fmt="rafdb", split_of=lambda g: "train")
    leaky.samples[0].split = "test"  # group S000 is now in the published train and test
    with pytest.warns(UserWarning, match=r"1 group\(s\) are in more than one .*S000"):
        make_split(leaky, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 15), min_size=3, max_size=40),
    classes=st.integers(1, 6),
    test_size=st.floats(0.05, 0.5),
    val_size=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**16),
    ungrouped=st.integers(0, 5),
)
def test_grouped_splits_never_share_a_group(sizes, classes, test_size, val_size, seed, ungrouped) -> None:
    records = _grouped_records(sizes, classes)
    records.samples += [Sample(image=f"x{i}", expression=i % classes, key=f"x{i}") for i in range(ungrouped)]
    split = make_split(records, test_size=test_size, val_size=val_size, seed=seed)
    assert sorted(k for keys in split.values() for k in keys) == sorted(s.key for s in records.samples)  # a partition
    groups = _part_groups(records, split)
    _assert_no_shared_group({name: {g for g in members if g is not None} for name, members in groups.items()})
    assert split["train"]


def test_many_groups_use_a_shuffled_group_split(monkeypatch) -> None:
    from affectkit.data import group_split

    monkeypatch.setattr(group_split, "_MAX_STRATIFIED_GROUPS", 5)  # as if the dataset had thousands of groups
    records = _grouped_records([2] * 50)
    split = make_split(records, test_size=0.2, val_size=0.1, seed=4)
    _assert_no_shared_group(_part_groups(records, split))
    assert len(split["test"]) == 20 and len(split["val"]) == 10  # equal groups: exact


def test_a_part_that_would_leave_train_without_a_group_is_empty_and_warned() -> None:
    # three one-sample groups, half to test: test takes two, the one left must stay in train, not become val
    records = _grouped_records([1, 1, 1], 1)
    with pytest.warns(UserWarning, match="the val part is empty: only 1 group is left"):
        split = make_split(records, test_size=0.5, val_size=0.25, seed=0)
    assert split["val"] == [] and len(split["train"]) == 1 and len(split["test"]) == 2
