"""The dataset readers with their own label codes, each on a tiny fixture generated in the dataset's published
layout: counts, label mapping, groups and splits, missing labels, and one bad entry of each kind (warned and
skipped, an error when strict). Also: a set without some labels trains only the heads it has labels for."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectkit.data import detect_format, read_dataset
from affectkit.data.dataset import label_arrays


def _image(path: Path, size: tuple[int, int] = (24, 24), value: int = 128, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = size[::-1] + ((3,) if mode == "RGB" else ())
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


def _read(root: Path, n_warnings: int, **kw):
    """Read with warnings recorded; exactly ``n_warnings`` skipped-entry warnings are expected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_dataset(root, **kw)
    messages = [str(w.message) for w in caught]
    assert len(messages) == n_warnings, messages
    return records, messages


def _read_skipping(root: Path, *says: str, **kw):
    """Read with one skipped-entry warning per ``says``, in order, each containing its fragment."""
    records, messages = _read(root, len(says), **kw)
    assert all(fragment in m for fragment, m in zip(says, messages, strict=True)), messages
    return records


def _by_key(records) -> dict:
    return {s.key: s for s in records.samples}


# ----------------------------------------------------------------------------------------------- FER2013


def _fer2013(root: Path) -> Path:
    """fer2013.csv: emotion,pixels,Usage; 48x48 gray as 2304 numbers. Rows 1-7: emotions 0..6 (Training)."""
    rows = [(e, (np.arange(2304) * (e + 1)) % 256, "Training") for e in range(7)]
    rows += [(3, np.full(2304, 7), "PublicTest"), (6, np.full(2304, 9), "PrivateTest")]
    lines = ["emotion,pixels,Usage"] + [f"{e},{' '.join(map(str, p))},{u}" for e, p, u in rows]
    lines += [
        "2,1 2 3,Training",  # line 11: 3 pixels
        f"9,{' '.join(['0'] * 2304)},Training",  # line 12: unknown emotion
        f"1,{' '.join(['0'] * 2304)},Homework",
    ]  # line 13: unknown Usage
    root.mkdir(parents=True, exist_ok=True)
    (root / "fer2013.csv").write_text("\n".join(lines) + "\n")
    return root


def test_fer2013_csv(tmp_path: Path) -> None:
    root = _fer2013(tmp_path / "fer")
    assert detect_format(root) == "fer2013_csv" and detect_format(root / "fer2013.csv") == "fer2013_csv"
    records, messages = _read(root, 3)
    assert [m.split("fer2013.csv:")[1][:2] for m in messages] == ["11", "12", "13"]
    assert len(records) == 9 and records.n_found == 12 and records.excluded["bad pixels"] == 1
    # 0 Angry 1 Disgust 2 Fear 3 Happy 4 Sad 5 Surprise 6 Neutral -> AffectNet ids
    assert [s.expression for s in records.samples] == [6, 5, 4, 1, 2, 3, 0, 1, 0]
    assert [s.split for s in records.samples] == ["train"] * 7 + ["val", "test"]
    first = records.samples[0]
    assert first.key == "fer2013.csv#00001" and first.image.shape == (48, 48) and first.image.dtype == np.uint8
    assert first.image[0, 5] == 5 and first.group is None and first.valence is None
    with pytest.raises(ValueError, match=r"fer2013\.csv:11: 3 pixel values"):
        read_dataset(root, strict=True)


def test_fer2013_pixels_go_straight_into_the_decoded_image_store(tmp_path: Path) -> None:
    from affectkit.data.cache import build_store

    records, _ = _read(_fer2013(tmp_path / "fer"), 3)
    store = build_store(records.samples, 32, cache_dir=tmp_path / "store", workers=1)
    assert store.ok.all() and store.images.shape == (9, 32, 32, 3)
    gray = store.images[7]  # a constant image stays that constant, on all three channels
    assert (np.asarray(gray) == 7).all()
    assert build_store(records.samples, 32, cache_dir=tmp_path / "store").folder == store.folder  # reused


# ------------------------------------------------------------------------------------------------ RAF-DB


def _rafdb(root: Path, aligned: bool = True) -> Path:
    lines = [
        "train_00001.jpg 1",
        "train_00002.jpg 4",
        "train_00003.jpg 7",
        "test_0001.jpg 6",
        "test_0002.jpg 5",
        "train_00004.jpg 9",  # unknown label
        "train_00005.jpg",  # malformed line
        "test_0003.jpg 2",
    ]  # listed, no image
    for line in lines[:6]:
        stem = line.split(".")[0]
        _image(
            root
            / "Image"
            / ("aligned" if aligned else "original")
            / (f"{stem}_aligned.jpg" if aligned else f"{stem}.jpg")
        )
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("aligned", [True, False])
def test_rafdb(tmp_path: Path, aligned: bool) -> None:
    root = _rafdb(tmp_path / "basic", aligned)
    assert detect_format(root) == "rafdb"
    records, messages = _read(root, 3)
    assert "unknown label '9'" in messages[0] and "expected '<image> <label>'" in messages[1]
    assert "test_0003" in messages[2] and records.excluded["missing image"] == 1
    folder = "Image/aligned" if aligned else "Image/original"
    name = "train_00001_aligned.jpg" if aligned else "train_00001.jpg"
    got = {s.key: (s.expression, s.split) for s in records.samples}
    # 1 Surprise 4 Happiness 7 Neutral 6 Anger 5 Sadness
    assert got[f"{folder}/{name}"] == (3, "train") and len(got) == 5
    assert sorted(e for e, _ in got.values()) == [0, 1, 2, 3, 6]
    assert {sp for _, sp in got.values()} == {"train", "test"}
    assert not records.has_va and not records.has_groups
    with pytest.raises(ValueError, match="unknown label"):
        read_dataset(root, strict=True)


# --------------------------------------------------------------------------------------------------- ExpW


def _expw(root: Path) -> Path:
    _image(root / "image" / "origin" / "party_1.jpg", size=(60, 40))
    _image(root / "image" / "origin" / "solo_2.jpg", size=(30, 30))
    lines = [
        "party_1.jpg 0 5 10 30 25 80.5 3",  # top left right bottom: a 20x20 face
        "party_1.jpg 1 8 35 55 30 60.1 6",
        "solo_2.jpg 0 2 2 28 28 99.0 0",
        "solo_2.jpg 1 2 2 2 28 99.0 0",  # no area
        "solo_2.jpg 2 2 2 28 28 99.0 8",  # unknown label
        "gone_3.jpg 0 2 2 28 28 99.0 4",  # no image
        "solo_2.jpg 3 2 2 28",
    ]  # malformed
    (root / "label").mkdir(parents=True)
    (root / "label" / "label.lst").write_text("\n".join(lines) + "\n")
    return root


def test_expw(tmp_path: Path) -> None:
    root = _expw(tmp_path / "ExpW")
    assert detect_format(root) == "expw"
    records = _read_skipping(root, "no area", "unknown label '8'", "gone_3.jpg", "expected 8 fields")
    s = _by_key(records)
    assert set(s) == {"image/origin/party_1.jpg#0", "image/origin/party_1.jpg#1", "image/origin/solo_2.jpg#0"}
    assert s["image/origin/party_1.jpg#0"].box == (10, 5, 20, 20) and s["image/origin/party_1.jpg#0"].expression == 1
    assert s["image/origin/party_1.jpg#1"].expression == 0 and s["image/origin/solo_2.jpg#0"].expression == 6
    assert {x.group for x in records.samples} == {"party_1.jpg", "solo_2.jpg"} and records.group_kind == "photo"
    from affectkit.data.cache import decode_resized

    assert decode_resized(s["image/origin/party_1.jpg#0"], 16).shape == (16, 16, 3)  # cropped by its box


# ---------------------------------------------------------------------------------------------------- CK+


def _ckplus(root: Path) -> Path:
    def sequence(subject: str, seq: str, n: int, code: str | None) -> None:
        for i in range(1, n + 1):
            _image(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{i:08d}.png", mode="L")
        if code is not None:
            folder = root / "Emotion" / subject / seq
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{subject}_{seq}_{n:08d}_emotion.txt").write_text(f"   {code}\n")

    sequence("S005", "001", 6, "3.0000000e+00")  # disgust
    sequence("S010", "002", 5, None)  # no emotion label: left out
    sequence("S010", "004", 4, "5.0000000e+00")  # happy
    sequence("S011", "001", 4, "9.0000000e+00")  # unknown code
    (root / "Emotion" / "S012" / "003").mkdir(parents=True)  # a label whose frames are missing
    (root / "Emotion" / "S012" / "003" / "S012_003_00000009_emotion.txt").write_text("1.0000000e+00\n")
    return root


def test_ckplus_release_peak_frames_and_subjects(tmp_path: Path) -> None:
    root = _ckplus(tmp_path / "CK+")
    assert detect_format(root) == "ckplus"
    records, messages = _read(root, 2)
    assert "unknown emotion code '9.0000000e+00'" in messages[0] and "S012/003" in messages[1]
    by_seq: dict = {}
    for s in records.samples:
        by_seq.setdefault(s.key.split("/")[2], []).append((s.key.rsplit("_", 1)[1], s.expression))
    assert by_seq["001"] == [("00000001.png", 0), ("00000004.png", 5), ("00000005.png", 5), ("00000006.png", 5)]
    assert by_seq["004"] == [("00000001.png", 0), ("00000002.png", 1), ("00000003.png", 1), ("00000004.png", 1)]
    assert records.excluded["ckplus sequence without emotion label"] == 1
    assert {s.group for s in records.samples} == {"S005", "S010"} and records.group_kind == "subject"
    one, _ = _read(root, 2, peak_frames=1)
    assert len(one) == 4 and sum(s.expression == 0 for s in one.samples) == 2
    with pytest.raises(ValueError, match="peak_frames"):
        read_dataset(root, peak_frames=0)


def test_ckplus48_class_folders_are_ckplus_not_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "CK+48"
    for folder, names in {
        "anger": ["S010_004_00000017.png", "S010_004_00000018.png"],
        "contempt": ["S138_008_00000007.png"],
        "surprise": ["S011_001_00000016.png"],
    }.items():
        for name in names:
            _image(root / folder / name, size=(48, 48), mode="L")
    assert detect_format(root) == "ckplus"
    records, _ = _read(root, 0)
    assert {(s.key, s.expression, s.group) for s in records.samples} == {
        ("anger/S010_004_00000017.png", 6, "S010"),
        ("anger/S010_004_00000018.png", 6, "S010"),
        ("contempt/S138_008_00000007.png", 7, "S138"),
        ("surprise/S011_001_00000016.png", 3, "S011"),
    }


# -------------------------------------------------------------------------------------------------- JAFFE


def test_jaffe(tmp_path: Path) -> None:
    root = tmp_path / "jaffe"
    for name in (
        "KA.AN1.39.tiff",
        "KA.NE1.26.tiff",
        "KL.HA2.30.tiff",
        "YM.SU3.60.tiff",
        "NA.DI1.214.tiff",
        "TM.FE2.190.tiff",
        "UY.SA1.140.tiff",
        "KA.XX1.40.tiff",
        "photo.tiff",
    ):
        _image(root / name, size=(32, 32), mode="L")
    (root / "README").write_text("not an image: ignored")
    assert detect_format(root) == "jaffe"
    records, messages = _read(root, 2)
    assert "KA.XX1.40.tiff: unknown expression code 'XX'" in messages[0] and "photo.tiff" in messages[1]
    assert {s.key: (s.expression, s.group) for s in records.samples} == {
        "KA.AN1.39.tiff": (6, "KA"),
        "KA.NE1.26.tiff": (0, "KA"),
        "KL.HA2.30.tiff": (1, "KL"),
        "YM.SU3.60.tiff": (3, "YM"),
        "NA.DI1.214.tiff": (5, "NA"),
        "TM.FE2.190.tiff": (4, "TM"),
        "UY.SA1.140.tiff": (2, "UY"),
    }
    arrays = label_arrays(records.samples)
    assert np.isnan(arrays["valence"]).all() and np.isnan(arrays["arousal"]).all()  # missing, never zero


# ------------------------------------------------------------------------------------------------ AFEW-VA


def _landmarks(cx: float, cy: float, r: float = 6.0) -> list:
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return [[float(cx + r * np.cos(a)), float(cy + r * np.sin(a))] for a in angles]


def _afew_va(root: Path) -> Path:
    frames = {
        f"{i:05d}": {"valence": v, "arousal": a, "landmarks": _landmarks(20, 16)}
        for i, (v, a) in enumerate([(-10, 0), (5, 3), (10, -10), (11, 0)])
    }
    frames["00004"] = {"valence": 0, "arousal": 0, "landmarks": []}  # no landmarks
    frames["00005"] = {"valence": 1, "arousal": 1, "landmarks": _landmarks(20, 16)}  # no image
    for i in range(5):
        _image(root / "001" / f"{i:05d}.png", size=(40, 32))
    (root / "001" / "001.json").write_text(json.dumps({"actor": "x", "frames": frames, "video_id": "001"}))
    for i in range(2):
        _image(root / "002" / f"{i:05d}.png", size=(40, 32))
    (root / "002" / "002.json").write_text(
        json.dumps(
            {
                "frames": {
                    "00000": {"valence": 2, "arousal": -4, "landmarks": _landmarks(10, 10)},
                    "00001": {"valence": 0, "arousal": 7, "landmarks": _landmarks(10, 10)},
                }
            }
        )
    )
    (root / "003").mkdir()
    _image(root / "003" / "00000.png")
    (root / "003" / "003.json").write_text("{not json")
    return root


def test_afew_va(tmp_path: Path) -> None:
    root = _afew_va(tmp_path / "afew")
    assert detect_format(root) == "afew_va"
    records = _read_skipping(root, "valence/arousal 11/0", "no usable landmarks", "00005.png", "003.json")
    s = _by_key(records)
    assert set(s) == {"001/00000.png", "001/00001.png", "001/00002.png", "002/00000.png", "002/00001.png"}
    assert (s["001/00000.png"].valence, s["001/00000.png"].arousal) == (-1.0, 0.0)
    assert (s["001/00001.png"].valence, s["001/00001.png"].arousal) == (0.5, 0.3)
    assert all(x.expression is None for x in records.samples) and not records.has_expression
    assert s["001/00001.png"].box == (11, 7, 18, 18) and s["001/00001.png"].landmarks.shape == (68, 2)
    assert {x.group for x in records.samples} == {"001", "002"} and records.group_kind == "clip"
    assert (label_arrays(records.samples)["expression"] == -1).all()
    with pytest.raises(ValueError, match="11/0"):
        read_dataset(root, strict=True)


# ---------------------------------------------------------------------------------------------- Aff-Wild2


def _affwild2(root: Path) -> Path:
    ann = root / "annotations"

    def write(challenge: str, set_name: str, video: str, header: str, lines: list[str]) -> None:
        folder = ann / challenge / set_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{video}.txt").write_text("\n".join([header, *lines]) + "\n")

    va_header, expr_header = "valence,arousal", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    for i in (1, 2, 3, 5):  # frame 4 has no cropped face
        _image(root / "cropped_aligned" / "10-60-1280x720" / f"{i:05d}.jpg")
    write(
        "VA_Estimation_Challenge",
        "Train_Set",
        "10-60-1280x720",
        va_header,
        ["0.5,-0.25", "-5,-5", "0.1,0.2", "0.3,0.3", "-5,-5"],
    )
    write("EXPR_Classification_Challenge", "Train_Set", "10-60-1280x720", expr_header, ["4", "1", "7", "2", "-1"])
    for side in ("left", "right"):
        for i in (1, 2):
            _image(root / "cropped_aligned" / f"video7_{side}" / f"{i:05d}.jpg")
        write("VA_Estimation_Challenge", "Validation_Set", f"video7_{side}", va_header, ["0.0,0.0", "2.0,0.1"])
    write("EXPR_Classification_Challenge", "Validation_Set", "broken", "valence,arousal", ["1"])  # wrong header
    for i in (1, 2):
        _image(root / "cropped_aligned" / "20-24-1920x1080" / f"{i:05d}.jpg")
    write("VA_Estimation_Challenge", "Train_Set", "20-24-1920x1080", va_header, ["0.2,0.2", "0.4,0.4"])
    return root


def test_affwild2_joins_both_annotation_sets_per_frame(tmp_path: Path) -> None:
    root = _affwild2(tmp_path / "aff")
    assert detect_format(root) == "affwild2"
    records, messages = _read(root, 3)
    assert "2.0,0.1" in messages[0] and "2.0,0.1" in messages[1] and "broken.txt" in messages[2]
    s = _by_key(records)
    video = "cropped_aligned/10-60-1280x720"
    got = {k.split("/")[-1]: (x.expression, x.valence, x.arousal) for k, x in s.items() if k.startswith(video)}
    assert got == {
        "00001.jpg": (1, 0.5, -0.25),  # happiness + VA
        "00002.jpg": (6, None, None),  # anger, VA -5
        "00003.jpg": (None, 0.1, 0.2),
    }  # Other: no expression
    assert records.excluded["affwild2 frame without a cropped face"] == 1  # frame 4
    assert records.excluded["no usable label"] == 1  # frame 5: -5 and -1
    assert records.excluded["affwild2 expression 7 (Other)"] == 1
    assert {x.split for k, x in s.items() if k.startswith(video)} == {"train"}
    assert {(x.group, x.split) for k, x in s.items() if "video7" in k} == {("video7", "val")}


def test_affwild2_split_keeps_both_halves_of_a_video_together(tmp_path: Path) -> None:
    from affectkit.data.splits import make_split

    records, _ = _read(_affwild2(tmp_path / "aff"), 3)
    split = make_split(records, seed=0)
    assert sorted(split["test"]) == ["cropped_aligned/video7_left/00001.jpg", "cropped_aligned/video7_right/00001.jpg"]
    assert split.info["groups"]["test"] == ["video7"]


# ------------------------------------------------------------------------ missing labels train no head


def _one_step_grads(samples) -> dict[str, float]:
    """Gradient norms of the expression and valence/arousal outputs after one loss on these samples."""
    import torch

    from affectkit.data.dataset import AffectDataset, collate
    from affectkit.models import create_model
    from affectkit.training.losses import multitask_loss

    torch.manual_seed(0)
    model = create_model("resnet18", weights="none")
    data = AffectDataset(samples, 32)
    batch = collate([data[i] for i in range(len(data))])
    logits, va = model(batch["image"].float() / 255)
    multitask_loss(logits, va, batch)["loss"].backward()
    grads = {
        name: getattr(model.head, layer).weight.grad for name, layer in (("expression", "classifier"), ("va", "va"))
    }
    return {name: 0.0 if g is None else float(g.abs().sum()) for name, g in grads.items()}


def test_expression_only_and_va_only_sets_train_only_their_heads(tmp_path: Path) -> None:
    from affectkit.data.dataset import AffectDataset
    from affectkit.training.config import load_config
    from affectkit.training.run import trained_heads

    cfg = load_config(None)
    ck, _ = _read(_ckplus(tmp_path / "ck"), 2)
    grads = _one_step_grads(ck.samples)
    assert grads["expression"] > 0 and grads["va"] == 0
    assert trained_heads(cfg, AffectDataset(ck.samples, 32)) == {"expression": True, "valence": False, "arousal": False}
    afew, _ = _read(_afew_va(tmp_path / "afew"), 4)
    grads = _one_step_grads(afew.samples)
    assert grads["expression"] == 0 and grads["va"] > 0
    assert trained_heads(cfg, AffectDataset(afew.samples, 32)) == {
        "expression": False,
        "valence": True,
        "arousal": True,
    }


def test_data_summary_command_on_fer2013_and_ckplus(tmp_path: Path) -> None:
    from clitools import ak

    res = ak("data", "summary", "fer/fer2013.csv", "--json", cwd=_fer2013(tmp_path / "fer").parent)
    summary = json.loads(res.stdout)
    assert summary["format"] == "fer2013_csv" and summary["n_usable"] == 9 and summary["groups"] is None
    assert summary["splits"] == {"train": 7, "val": 1, "test": 1} and summary["excluded"]["bad pixels"] == 1
    assert res.stderr.count("warning: ") == 3
    _ckplus(tmp_path / "ck")
    res = ak("data", "summary", "ck", cwd=tmp_path)
    assert "Format   ckplus" in res.stdout and "Groups   2 subjects (up to 4 images each" in res.stdout
