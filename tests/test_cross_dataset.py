"""Cross-dataset evaluation: other classes, other heads, a dataset holding only the split it evaluates, and
comparing one model across datasets; plus the sample grid showing the model's errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import f1_score

from affectkit.evaluation import MAX_THUMBS, pick_thumbs

from clitools import FERPLUS_CONFIG, ak, link_ferplus, tiny

TINY = tiny(batch_size=32)
SEVEN = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")  # no contempt, as FER2013 or RAF-DB


def _faces(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(n)]


def seven_class_folder(root: Path, per_class: int = 5) -> Path:
    for c, name in enumerate(SEVEN):
        (root / name).mkdir(parents=True)
        for i, img in enumerate(_faces(per_class, c)):
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(synth_small, tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("cross")
    ak("train", "--data", synth_small, *TINY, "--out", cwd / "run", cwd=cwd)
    return cwd / "run"


def test_seven_class_folder_counts_its_classes_only(trained, tmp_path):
    seven = seven_class_folder(tmp_path / "seven")
    res = ak("evaluate", trained, "--data", seven, "--split", "all", cwd=tmp_path)
    assert "absent: Contempt" in res.stdout
    m = json.loads((trained / "eval" / "seven-all_metrics.json").read_text())  # beside the run's own results
    ds = m["dataset"]
    assert ds["classes"] == ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger"]
    assert ds["absent_classes"] == ["Contempt"] and ds["format"] == "image_folder"
    assert ds["heads"] == {"expression": True, "valence": False, "arousal": False}
    assert m["valence"] is None and m["arousal"] is None  # the set has no valence/arousal: no metrics, no crash
    assert m["n"] == 35 and m["accuracy_restricted"] >= m["accuracy"]
    pred = np.load(trained / "eval" / "seven-all_predictions.npz")
    y, p = pred["y_true"], pred["y_prob"].argmax(1)
    assert m["f1_macro"] == pytest.approx(f1_score(y, p, labels=sorted(set(y) | (set(p) - {7})), average="macro"))
    # the grid: the model's errors take up to half of it (more only when too few are right to fill it)
    wrong = int((y != p).sum())
    tidx = pred["thumb_index"]
    assert len(tidx) == min(MAX_THUMBS, len(y))
    expected = min(wrong, max(len(tidx) // 2, len(tidx) - (len(y) - wrong)))
    assert int((y[tidx] != p[tidx]).sum()) == expected

    out = tmp_path / "restricted_metrics.json"
    res = ak("evaluate", trained, "--data", seven, "--split", "all", "--restrict-classes", "--out", out, cwd=tmp_path)
    r = json.loads(out.read_text())
    assert r["dataset"]["restricted"] and r["accuracy"] == r["accuracy_restricted"] == m["accuracy_restricted"]
    assert r["accuracy_unrestricted"] == m["accuracy"]
    probs = np.load(tmp_path / "restricted_predictions.npz")["y_prob"]
    assert (probs[:, 7] == 0).all() and np.allclose(probs.sum(1), 1, atol=1e-5)
    rows = list(csv.DictReader((tmp_path / "restricted_predictions.csv").open()))
    assert len(rows) == 35 and all(row["expression"] != "Contempt" for row in rows)

    ak("report", trained, "--split", "seven-all", cwd=tmp_path)
    md = (trained / "report" / "report.md").read_text()
    assert "Evaluated classes | 7: Neutral" in md and "Accuracy among the dataset's classes" in md

    # one model, several datasets: one column per dataset
    ak("evaluate", trained, cwd=tmp_path)
    ak("compare", trained, "--evals", "--out", tmp_path / "cmp", cwd=tmp_path)
    with (tmp_path / "cmp" / "comparison.csv").open() as fh:
        table = {row["metric"]: row for row in csv.DictReader(fh)}
    assert list(table["Accuracy"])[:3] == ["metric", "faces", "seven (all)"]
    assert float(table["Accuracy (dataset's classes)"]["seven (all)"]) == pytest.approx(m["accuracy_restricted"])
    assert table["Valence CCC"]["seven (all)"] == "" and table["Valence CCC"]["faces"] != ""
    ak("compare", trained / "eval" / "test_metrics.json", out, "--out", tmp_path / "cmp2", cwd=tmp_path)
    assert "| Metric | faces | seven (all) |" in (tmp_path / "cmp2" / "comparison.md").read_text()


def _ferplus_test_only(root: Path) -> Path:
    """A FER+ copy holding only FER2013Test (votes in label.csv order: neutral, happiness, surprise, ...)."""
    folder = root / "FER2013Test"
    folder.mkdir(parents=True)
    lines = []
    for i, img in enumerate(_faces(14, 9)):
        Image.fromarray(img).save(folder / f"fer{i:07d}.png")
        votes = [0] * 10
        votes[i % 7] = 8  # the 7 first emotions: no contempt
        lines.append(",".join([f"fer{i:07d}.png", '"(0, 0, 32, 32)"', *map(str, votes)]))
    (folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_a_dataset_holding_only_its_test_split_is_evaluated(trained, tmp_path):
    fer = _ferplus_test_only(tmp_path / "fer")
    ak("evaluate", trained, "--data", fer, "--out", tmp_path / "fer_metrics.json", cwd=tmp_path)
    m = json.loads((tmp_path / "fer_metrics.json").read_text())
    assert m["n"] == 14 and m["dataset"]["format"] == "ferplus" and len(m["dataset"]["classes"]) == 7
    assert m["valence"] is None


def test_a_valence_arousal_only_set_gets_only_va_metrics(trained, tmp_path):
    from test_readers import _afew_va

    afew = _afew_va(tmp_path / "afew")
    ak("evaluate", trained, "--data", afew, "--split", "all", cwd=tmp_path)
    m = json.loads((trained / "eval" / "afew-all_metrics.json").read_text())
    assert m["dataset"]["heads"] == {"expression": False, "valence": True, "arousal": True}
    assert m["dataset"]["classes"] == [] and "accuracy_restricted" not in m
    assert m["accuracy"] is None and m["valence"]["rmse"] is not None


@pytest.mark.parametrize("n_wrong", [0, 3, 40])
def test_sample_grid_shows_errors_up_to_half(n_wrong):
    y_true = np.arange(100) % 8
    y_pred = y_true.copy()
    y_pred[:n_wrong] = (y_pred[:n_wrong] + 1) % 8
    idx = pick_thumbs(y_true, y_pred)
    assert len(idx) == MAX_THUMBS and len(set(idx.tolist())) == MAX_THUMBS
    assert int((y_true[idx] != y_pred[idx]).sum()) == min(n_wrong, MAX_THUMBS // 2)
    assert set(y_true[idx].tolist()) == set(range(8))  # every expression still shows


FERPLUS_COLUMNS = ("neutral", "happy", "surprise", "sad", "anger", "disgust", "fear", "contempt")


@pytest.mark.ferplus
def test_ferplus_model_on_a_seven_class_folder(ferplus_root, tmp_path):
    """A model trained (briefly) on FER+ evaluated on a 7-class image folder made of FER+ Valid faces sorted by
    their majority vote: 7 classes counted, Contempt absent, restricted accuracy beside the plain one."""
    root = link_ferplus(ferplus_root, tmp_path / "ferplus", {"FER2013Train": 96, "FER2013Valid": 48})
    valid_rows = (ferplus_root / "FER2013Valid" / "label.csv").read_text().splitlines()[:240]
    ak(
        "train",
        "--config",
        FERPLUS_CONFIG,
        "--data",
        root,
        *TINY,
        "--out",
        "run",
        "--set",
        "freeze_epochs=0",
        cwd=tmp_path,
    )
    seven, n = tmp_path / "seven", 0
    for r in valid_rows:
        name, votes = r.split(",")[0], [int(v) for v in r.split(",")[-10:-2]]
        top = FERPLUS_COLUMNS[int(np.argmax(votes))]
        if top == "contempt" or votes.count(max(votes)) > 1:
            continue
        (seven / top).mkdir(parents=True, exist_ok=True)
        (seven / top / name).symlink_to(ferplus_root / "FER2013Valid" / name)
        n += 1
    assert len(list(seven.iterdir())) == 7, "the first 240 Valid faces cover the 7 classes"
    res = ak("evaluate", "run", "--data", seven, "--split", "all", cwd=tmp_path)
    assert "absent: Contempt" in res.stdout
    m = json.loads((tmp_path / "run" / "eval" / "seven-all_metrics.json").read_text())
    assert m["n"] == n and m["dataset"]["absent_classes"] == ["Contempt"] and len(m["dataset"]["classes"]) == 7
    assert m["valence"] is None and m["arousal"] is None
    assert m["accuracy_restricted"] >= m["accuracy"]
