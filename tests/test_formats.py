"""Dataset readers on tiny generated fixtures, and FER+ on the real shared copy."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectkit.data import detect_format, read_dataset
from affectkit.labels import FERPLUS_COLUMNS


def _image(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)


def _npy_dataset(root: Path, entries: dict[str, tuple], ext: str = "jpg") -> None:
    """entries: id -> (exp, val, aro, lnd or None); a value of ... means 'no file'."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for image_id, (exp, val, aro, lnd) in entries.items():
        _image(root / "images" / f"{image_id}.{ext}")
        for kind, value in (("exp", exp), ("val", val), ("aro", aro), ("lnd", lnd)):
            if value is not ... and value is not None:
                np.save(root / "annotations" / f"{image_id}_{kind}.npy", value)


LANDMARKS = np.arange(136, dtype=np.float64)


@pytest.fixture
def affectnet_npy(tmp_path: Path) -> Path:
    root = tmp_path / "affectnet"
    _npy_dataset(
        root,
        {
            "0": (np.array("3"), np.array("0.25"), np.array("-0.5"), LANDMARKS.astype(str)),  # strings
            "1": (np.array(1), np.array(0.75), np.array(0.1), LANDMARKS),  # numbers
            "2": (np.array("8"), np.array("0.5"), np.array("0.5"), None),  # no expression, VA kept
            "3": (np.array(9.0), np.array(-2.0), np.array("-2"), None),  # nothing usable -> dropped
            "4": (np.array(6), np.array(-2), np.array(0.3), None),  # valence invalid, rest kept
        },
    )
    return root


def test_affectnet_npy_reads_numbers_and_strings(affectnet_npy: Path) -> None:
    assert detect_format(affectnet_npy) == "affectnet_npy"
    records = read_dataset(affectnet_npy)
    by_key = {s.key: s for s in records.samples}
    assert sorted(by_key) == ["images/0.jpg", "images/1.jpg", "images/2.jpg", "images/4.jpg"]
    s0, s1, s2, s4 = (by_key[f"images/{i}.jpg"] for i in (0, 1, 2, 4))
    assert (s0.expression, s0.valence, s0.arousal) == (3, 0.25, -0.5)
    assert (s1.expression, s1.valence, s1.arousal) == (1, 0.75, 0.1)
    assert s0.landmarks.shape == (68, 2) and s0.landmarks[1, 0] == 2 and s1.landmarks[67, 1] == 135
    assert s2.expression is None and s2.valence == 0.5
    assert s4.valence is None and s4.arousal == 0.3 and s4.expression == 6
    assert Path(s0.image).is_file() and s0.split is None
    assert records.excluded == {
        "expression 8 (none)": 1,
        "expression 9 (uncertain)": 1,
        "valence -2 (invalid)": 2,
        "arousal -2 (invalid)": 1,
        "no usable label": 1,
    }
    assert records.n_found == 5


def test_affectnet_npy_missing_annotation_skipped_or_strict(affectnet_npy: Path) -> None:
    (affectnet_npy / "annotations" / "1_aro.npy").unlink()
    (affectnet_npy / "annotations" / "4_val.npy").write_bytes(b"garbage")
    with pytest.warns(UserWarning) as warned:
        records = read_dataset(affectnet_npy)
    assert any("1_aro.npy" in str(w.message) for w in warned)
    assert any("4_val.npy" in str(w.message) for w in warned)
    assert "images/1.jpg" not in {s.key for s in records.samples}
    assert records.excluded["missing annotation"] == 1 and records.excluded["unreadable annotation"] == 1
    assert {Path(f).name for f, _ in records.problems} == {"1_aro.npy", "4_val.npy"}
    with pytest.raises(ValueError, match=r"1_aro.npy"):
        read_dataset(affectnet_npy, strict=True)


@pytest.mark.parametrize(
    "kind, value, match",
    [("exp", np.array("12"), "expression 12"), ("val", np.array(1.5), "valence"), ("aro", np.array("abc"), "arousal")],
)
def test_affectnet_npy_out_of_range_raises(affectnet_npy: Path, kind: str, value, match: str) -> None:
    np.save(affectnet_npy / "annotations" / f"1_{kind}.npy", value)
    with pytest.raises(ValueError, match=match) as info:
        read_dataset(affectnet_npy)
    assert f"1_{kind}.npy" in str(info.value)


def test_affectnet_npy_official_train_val_layout(tmp_path: Path) -> None:
    _npy_dataset(
        tmp_path / "train_set",
        {
            "10": (np.array("1"), np.array("0.1"), np.array("0.2"), None),
            "11": (np.array("2"), np.array("0.1"), np.array("0.2"), None),
        },
    )
    _npy_dataset(tmp_path / "val_set", {"20": (np.array("0"), np.array("0.0"), np.array("0.0"), None)}, ext="png")
    assert detect_format(tmp_path) == "affectnet_npy"
    records = read_dataset(tmp_path)
    assert {(s.key, s.split) for s in records.samples} == {
        ("train_set/images/10.jpg", "train"),
        ("train_set/images/11.jpg", "train"),
        ("val_set/images/20.png", "val"),
    }


def _write_csv(path: Path, header: list[str] | None, rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


AFFECTNET_HEADER = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]


def test_affectnet_csv(tmp_path: Path) -> None:
    base = tmp_path / "Manually_Annotated_Images"
    for rel in ("1/a.jpg", "1/b.jpg", "2/c.jpg"):
        _image(base / rel)
    _write_csv(
        tmp_path / "training.csv",
        AFFECTNET_HEADER,
        [
            ["1/a.jpg", 2, 3, 10, 12, "1.5;2.5;3;4", 1, 0.5, -0.25],
            ["1/b.jpg", 0, 0, 16, 16, "", 10, -2, -2],  # no-face and invalid VA -> dropped
        ],
    )
    _write_csv(tmp_path / "validation.csv", AFFECTNET_HEADER, [["2/c.jpg", "", "", "", "", "", 7, 0.1, 0.2]])
    assert detect_format(tmp_path) == "affectnet_csv"
    records = read_dataset(tmp_path)
    by_key = {s.key: s for s in records.samples}
    assert sorted(by_key) == ["Manually_Annotated_Images/1/a.jpg", "Manually_Annotated_Images/2/c.jpg"]
    a = by_key["Manually_Annotated_Images/1/a.jpg"]
    assert a.box == (2, 3, 10, 12) and a.split == "train" and Path(a.image).is_file()
    assert a.landmarks.tolist() == [[1.5, 2.5], [3.0, 4.0]]
    assert (a.expression, a.valence, a.arousal) == (1, 0.5, -0.25)
    c = by_key["Manually_Annotated_Images/2/c.jpg"]
    assert c.split == "val" and c.box is None and c.expression == 7
    assert records.excluded["expression 10 (no_face)"] == 1 and records.excluded["no usable label"] == 1

    _write_csv(tmp_path / "validation.csv", AFFECTNET_HEADER, [["2/c.jpg", "", "", "", "", "", 11, 0.1, 0.2]])
    with pytest.raises(ValueError, match=r"validation\.csv:2.*expression 11"):
        read_dataset(tmp_path)


def _ferplus_tiny(root: Path, rows: list[tuple[str, list[int]]], folder: str = "FER2013Train") -> None:
    for name, _ in rows:
        _image(root / folder / name)
    _write_csv(root / folder / "label.csv", None, [[n, "(0, 0, 16, 16)", *v] for n, v in rows])


def test_ferplus_label_modes_on_tiny_fixture(tmp_path: Path) -> None:
    # columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    _ferplus_tiny(
        tmp_path,
        [
            ("happy.png", [1, 7, 0, 0, 0, 0, 0, 0, 2, 0]),
            ("surprise.png", [0, 0, 6, 0, 0, 0, 4, 0, 0, 0]),
            ("tie.png", [0, 5, 5, 0, 0, 0, 0, 0, 0, 0]),
            ("unknown.png", [0, 3, 0, 0, 0, 0, 0, 0, 4, 3]),
            ("nf.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),
        ],
    )
    _ferplus_tiny(
        tmp_path,
        [("v.png", [0, 0, 0, 0, 0, 0, 0, 9, 1, 0]), ("vtie.png", [4, 4, 0, 0, 0, 0, 0, 0, 0, 0])],
        folder="FER2013Valid",
    )
    assert detect_format(tmp_path) == "ferplus"
    records = read_dataset(tmp_path)
    by_key = {s.key: s for s in records.samples}
    assert sorted(by_key) == ["FER2013Train/happy.png", "FER2013Train/surprise.png", "FER2013Valid/v.png"]
    happy, surprise = by_key["FER2013Train/happy.png"], by_key["FER2013Train/surprise.png"]
    assert happy.expression == 1 and surprise.expression == 3 and by_key["FER2013Valid/v.png"].expression == 7
    assert happy.split == "train" and by_key["FER2013Valid/v.png"].split == "val"
    assert np.allclose(surprise.soft_label, [0, 0, 0, 0.6, 0.4, 0, 0, 0])  # AffectNet order: Fear is id 4
    assert np.allclose(happy.soft_label.sum(), 1.0) and happy.box == (0, 0, 16, 16)
    assert records.excluded == {"ferplus tied top emotion vote": 2, "ferplus top vote unknown/NF": 2}

    # distribution mode keeps tied training images only: validation stays majority-vote
    soft = read_dataset(tmp_path, label_mode="distribution")
    tie = {s.key: s for s in soft.samples}["FER2013Train/tie.png"]
    assert np.allclose(tie.soft_label, [0, 0.5, 0, 0.5, 0, 0, 0, 0])
    assert len(soft) == 4 and "FER2013Valid/vtie.png" not in {s.key for s in soft.samples}
    assert soft.excluded == {"ferplus top vote unknown/NF": 2, "ferplus tied top emotion vote": 1}
    with pytest.raises(ValueError, match="label_mode"):
        read_dataset(tmp_path, label_mode="soft")


def test_ferplus_missing_image_is_a_problem(tmp_path: Path) -> None:
    _ferplus_tiny(tmp_path, [("a.png", [0, 9, 0, 0, 0, 0, 0, 0, 0, 0]), ("b.png", [9, 0, 0, 0, 0, 0, 0, 0, 0, 0])])
    (tmp_path / "FER2013Train" / "b.png").unlink()
    with pytest.warns(UserWarning, match="b.png"):
        records = read_dataset(tmp_path)
    assert len(records) == 1 and records.excluded["missing image"] == 1
    with pytest.raises(ValueError, match=r"b.png"):
        read_dataset(tmp_path, strict=True)


@pytest.mark.ferplus
def test_ferplus_real(ferplus_root: Path) -> None:
    start = time.perf_counter()
    records = read_dataset(ferplus_root)
    elapsed = time.perf_counter() - start
    assert records.format == "ferplus" and records.n_found == 28558 + 3579
    splits = {"train": 0, "val": 0}
    for s in records.samples:
        splits[s.split] += 1
    assert splits["train"] < 28558 and splits["val"] < 3579 and splits["train"] > 25000
    assert len(records) + sum(records.excluded.values()) == records.n_found
    assert elapsed < 3.0, f"reading FER+ took {elapsed:.2f}s (budget ~2 s)"

    # Check the mapping against label.csv rows picked by their clear winner.
    by_key = {s.key: s for s in records.samples}
    wanted = {"happiness": 1, "surprise": 3, "sadness": 2, "anger": 6, "fear": 4, "neutral": 0}
    seen = {}
    with open(ferplus_root / "FER2013Train" / "label.csv", newline="") as f:
        for row in csv.reader(f):
            votes = [int(v) for v in row[2:]]
            top = FERPLUS_COLUMNS[int(np.argmax(votes))]
            if top in wanted and top not in seen and votes.count(max(votes)) == 1:
                seen[top] = row[0]
    assert set(seen) == set(wanted)
    for column, name in seen.items():
        assert by_key[f"FER2013Train/{name}"].expression == wanted[column], column


def test_image_folder(tmp_path: Path) -> None:
    for rel in ("Happy/a.jpg", "happiness_dup/x.jpg", "ANGRY/b.png", "neutral/c.bmp"):
        _image(tmp_path / rel)
    (tmp_path / "neutral" / "notes.txt").write_text("ignored")
    assert detect_format(tmp_path) == "image_folder"
    with pytest.raises(ValueError, match="happiness_dup"):
        read_dataset(tmp_path)
    (tmp_path / "happiness_dup" / "x.jpg").unlink()
    (tmp_path / "happiness_dup").rmdir()
    records = read_dataset(tmp_path)
    assert {(s.key, s.expression) for s in records.samples} == {
        ("Happy/a.jpg", 1),
        ("ANGRY/b.png", 6),
        ("neutral/c.bmp", 0),
    }


def test_image_folder_with_split_folders(tmp_path: Path) -> None:
    for rel in ("train/sad/a.jpg", "train/surprise/b.jpg", "val/sad/c.jpg", "test/fear/d.jpg"):
        _image(tmp_path / rel)
    records = read_dataset(tmp_path, format="image_folder")
    assert {(s.key, s.split, s.expression) for s in records.samples} == {
        ("train/sad/a.jpg", "train", 2),
        ("train/surprise/b.jpg", "train", 3),
        ("val/sad/c.jpg", "val", 2),
        ("test/fear/d.jpg", "test", 4),
    }


def test_manifest(tmp_path: Path) -> None:
    for rel in ("img/a.png", "img/b.png", "img/c.png", "img/d.png"):
        _image(tmp_path / rel)
    _write_csv(
        tmp_path / "labels.csv",
        ["path", "expression", "valence", "arousal"],
        [
            ["img/a.png", "happy", "0.5", ""],
            ["img/b.png", "3", "", ""],
            ["img/c.png", "", "-0.2", "0.9"],
            ["img/d.png", "8", "-2", ""],  # nothing usable
        ],
    )
    assert detect_format(tmp_path) == "manifest" and detect_format(tmp_path / "labels.csv") == "manifest"
    records = read_dataset(tmp_path / "labels.csv")
    got = {s.key: (s.expression, s.valence, s.arousal) for s in records.samples}
    assert got == {"img/a.png": (1, 0.5, None), "img/b.png": (3, None, None), "img/c.png": (None, -0.2, 0.9)}
    assert records.root == tmp_path.resolve() and records.excluded["no usable label"] == 1
    assert all(Path(s.image).is_file() for s in records.samples)

    _write_csv(
        tmp_path / "labels.csv",
        ["path", "expression", "split"],
        [["img/a.png", "sad", "train"], ["img/b.png", "0", "validation"]],
    )
    assert [s.split for s in read_dataset(tmp_path).samples] == ["train", "val"]
    _write_csv(tmp_path / "labels.csv", ["path", "expression"], [["img/a.png", "grumpy"]])
    with pytest.raises(ValueError, match=r"labels\.csv:2.*grumpy"):
        read_dataset(tmp_path)


def test_detect_format_errors(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ValueError) as info:
        detect_format(tmp_path)
    message = str(info.value)
    for name in ("ferplus", "affectnet_csv", "affectnet_npy", "manifest", "image_folder", "label.csv"):
        assert name in message
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "absent")
    with pytest.raises(ValueError, match="unknown format"):
        read_dataset(tmp_path, format="coco")


# --------------------------------------------------------------------- label files holding several values

LABEL_ARRAYS = {
    "two values": np.array([0.1, 0.2]),
    "2x2": np.zeros((2, 2)),
    "empty": np.array([]),
    "two strings": np.array(["0.1", "0.2"]),
}


@pytest.mark.parametrize("kind", ["exp", "val", "aro"])
@pytest.mark.parametrize("array", sorted(LABEL_ARRAYS))
def test_affectnet_npy_label_file_with_several_values_names_the_file(
    affectnet_npy: Path, kind: str, array: str
) -> None:
    value = LABEL_ARRAYS[array]
    np.save(affectnet_npy / "annotations" / f"1_{kind}.npy", value)
    with pytest.raises(ValueError, match=rf"1_{kind}\.npy: holds {value.size} values") as info:
        read_dataset(affectnet_npy)
    assert "\n" not in str(info.value)


def test_affectnet_npy_pickled_landmarks_warn_and_keep_the_image(affectnet_npy: Path) -> None:
    np.save(affectnet_npy / "annotations" / "1_lnd.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.warns(UserWarning, match=r"1_lnd\.npy: unreadable landmarks .*pickled.*image is kept"):
        records = read_dataset(affectnet_npy)
    s1 = next(s for s in records.samples if s.key == "images/1.jpg")
    assert s1.landmarks is None and s1.expression == 1
    assert [Path(f).name for f, _ in records.problems] == ["1_lnd.npy"]
    assert "unreadable landmarks" not in str(records.excluded)  # the sample is not excluded
    with pytest.raises(ValueError, match=r"1_lnd\.npy"):
        read_dataset(affectnet_npy, strict=True)


# ----------------------------------------------------------------------- manifest paths and duplicate rows


def _spellings(root: Path) -> list[str]:
    """Ways of writing img/a.png relative to (or inside) ``root``."""
    return ["img/a.png", "./img/a.png", "img//a.png", "img/./a.png", "other/../img/a.png", str(root / "img/a.png")]


@pytest.mark.parametrize("other", range(6))
def test_manifest_paths_are_normalised_and_identical_duplicates_kept_once(tmp_path: Path, other: int) -> None:
    _image(tmp_path / "img" / "a.png")
    _image(tmp_path / "img" / "b.png")
    spelled = _spellings(tmp_path)[other]
    _write_csv(
        tmp_path / "m.csv",
        ["path", "expression", "valence"],
        [["./img/a.png", "happy", "0.5"], ["img/b.png", "2", ""], [spelled, "1", "0.50"]],
    )
    records = read_dataset(tmp_path / "m.csv")
    assert [s.key for s in records.samples] == ["img/a.png", "img/b.png"]
    assert records.samples[0].expression == 1 and records.excluded["duplicate row (same labels)"] == 1
    assert records.n_found == 3


@pytest.mark.parametrize("other", range(6))
@pytest.mark.parametrize("change", [("2", "0.5", ""), ("1", "0.4", ""), ("1", "0.5", "test")])
def test_manifest_conflicting_duplicates_are_reported_with_their_lines(
    tmp_path: Path, other: int, change: tuple
) -> None:
    _image(tmp_path / "img" / "a.png")
    _image(tmp_path / "img" / "b.png")
    spelled = _spellings(tmp_path)[other]
    _write_csv(
        tmp_path / "m.csv",
        ["path", "expression", "valence", "split"],
        [["./img/a.png", "1", "0.5", ""], ["img/b.png", "2", "", ""], [spelled, *change]],
    )
    with pytest.raises(ValueError, match=r"m\.csv \(img/a\.png\): listed on lines 2, 4 with different labels"):
        read_dataset(tmp_path / "m.csv", strict=True)
    with pytest.warns(UserWarning, match=r"m\.csv \(img/a\.png\): listed on lines 2, 4"):
        records = read_dataset(tmp_path / "m.csv")
    assert [s.key for s in records.samples] == ["img/b.png"]
    assert records.excluded["conflicting duplicate rows"] == 2
    assert [Path(f.split(" ")[0]).name for f, _ in records.problems] == ["m.csv"]


# ------------------------------------------------------------------------- detection never guesses labels


def test_numeric_folders_are_classes_only_when_asked(tmp_path: Path) -> None:
    for rel in ("0/a.jpg", "1/b.jpg", "1/c.jpg", "6/d.jpg"):
        _image(tmp_path / rel)
    with pytest.raises(ValueError, match="no dataset layout found") as info:
        detect_format(tmp_path)
    assert "--numeric-classes" in str(info.value)
    with pytest.raises(ValueError, match=r"class folder\(s\) 0, 1, 6 match no expression .*--numeric-classes"):
        read_dataset(tmp_path, format="image_folder")
    for kw in ({"format": "image_folder", "numeric_classes": True}, {"numeric_classes": True}):
        records = read_dataset(tmp_path, **kw)
        assert {(s.key, s.expression) for s in records.samples} == {
            ("0/a.jpg", 0),
            ("1/b.jpg", 1),
            ("1/c.jpg", 1),
            ("6/d.jpg", 6),
        }
    with pytest.raises(ValueError, match="numeric_classes with format manifest"):
        read_dataset(tmp_path, format="manifest", numeric_classes=True)


def test_clip_and_id_folders_are_not_read_as_classes(tmp_path: Path) -> None:
    clips = tmp_path / "afew_without_json"  # AFEW-VA frames whose JSON files are absent
    for i in range(3):
        _image(clips / "001" / f"{i:05d}.png")
    affectnet = tmp_path / "Manually_Annotated_Images"
    _image(affectnet / "689" / "737db2483489148d783ef278f43f486c0a97e140fc4b6b61b84363ca.jpg")
    for root in (clips, affectnet):
        with pytest.raises(ValueError, match="no dataset layout found"):
            detect_format(root)


def test_every_layout_is_listed_when_none_matches_and_synthetic_data_detects(tmp_path: Path) -> None:
    from affectkit.data import FORMATS
    from affectkit.data.synth import generate
    from affectkit.training import config

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as info:
        detect_format(tmp_path / "empty")
    for name in FORMATS:
        assert f"  {name}: " in str(info.value), name
    assert "list_patition_label.txt" in str(info.value) and "KA.AN1.39.tiff" in str(info.value)
    assert config.FORMATS == FORMATS  # the config's allowed formats are the readers
    demo = generate(tmp_path / "demo", 16, seed=0, size=32, workers=1)
    assert detect_format(demo) == read_dataset(demo).format == "affectnet_npy"
