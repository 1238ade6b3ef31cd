"""One training run over several datasets: repeatable --data and data: lists, per-dataset splits, prefixed keys,
draw weights and per-dataset validation metrics."""

from __future__ import annotations

import csv
import json
import subprocess

import numpy as np
import pytest
from test_cross_dataset import TINY, seven_class_folder

from affectkit.data.records import Sample
from affectkit.data.sources import draw_weights

from clitools import AK, ak


def test_synthetic_plus_seven_class_folder_through_the_cli(synth_small, tmp_path):
    seven = seven_class_folder(tmp_path / "seven")
    ak("train", "--data", synth_small, "--data", seven, *TINY, "--out", tmp_path / "run", cwd=tmp_path)
    run = tmp_path / "run"
    with (run / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    cols = set(rows[0])
    assert {"val/faces/accuracy", "val/faces/f1_macro", "val/faces/valence_ccc", "val/seven/accuracy"} <= cols
    assert "val/seven/valence_ccc" not in cols  # the folder has no valence: nothing to measure
    assert 0 <= float(rows[0]["val/seven/accuracy"]) <= 1
    split = json.loads((run / "split.json").read_text())
    keys = [k for part in split["splits"].values() for k in part]
    assert len(keys) == len(set(keys)) == 320 + 35
    assert {k.split("/", 1)[0] for k in keys} == {"faces", "seven"}
    per = split["info"]["datasets"]
    assert per["faces"]["sizes"]["test"] == 64 and per["seven"]["format"] == "image_folder"  # each split on its own
    ak("report", run, cwd=tmp_path)  # no evaluation yet: the report still shows validation per dataset
    assert "Validation per dataset" in (run / "report" / "report.md").read_text()


def test_yaml_list_with_weights_and_a_va_only_set(synth_small, tmp_path):
    from test_readers import _afew_va

    afew = _afew_va(tmp_path / "afew")
    cfg = tmp_path / "multi.yaml"
    cfg.write_text(
        f"data:\n  - {{path: {synth_small}, weight: 1}}\n  - {{path: {afew}, format: afew_va, weight: 3, "
        f"name: clips}}\nsplit_by: none\n"
    )
    ak("train", "--config", cfg, *TINY, "--out", tmp_path / "run", cwd=tmp_path)
    with (tmp_path / "run" / "metrics.csv").open() as fh:
        cols = set(next(csv.DictReader(fh)))
    assert "val/faces/accuracy" in cols and "val/clips/accuracy" not in cols
    res = ak("evaluate", tmp_path / "run", cwd=tmp_path)
    assert "metrics: " in res.stdout


@pytest.mark.parametrize(
    "data, message",
    [
        ("  - {path: a, weight: 2}\n  - b\n", "weight is given for some datasets only"),
        ("  - {path: a, wieght: 2}\n", "data[0] has unknown key 'wieght'"),
        ("  - {path: a, weight: -1}\n", "data[0].weight -1 is not a number > 0"),
    ],
)
def test_bad_data_lists_are_one_clear_line(tmp_path, data, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("data:\n" + data)
    res = subprocess.run([*AK, "train", "--config", str(cfg)], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 2 and message in res.stderr and "bad.yaml" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_draw_weights_give_each_dataset_its_share():
    samples = [Sample(image="x", key=f"a/{i}", expression=i % 2) for i in range(90)] + [
        Sample(image="x", key=f"b/{i}", valence=0.0) for i in range(10)
    ]
    w = draw_weights(samples, {"a": 1.0, "b": 3.0}, balanced=False)
    assert w[:90].sum() == pytest.approx(0.25) and w[90:].sum() == pytest.approx(0.75)
    samples[0].expression = 1  # classes 1 (46) and 0 (44) in a: balanced gives each half of a's share
    w = draw_weights(samples, {"a": 1.0, "b": 1.0}, balanced=True)
    exp = np.array([s.expression for s in samples[:90]])
    assert w[:90][exp == 0].sum() == pytest.approx(0.25) and w[:90][exp == 1].sum() == pytest.approx(0.25)
