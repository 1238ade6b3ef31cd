"""Distillation (``teacher:``): a model's probabilities mixed into the training targets, computed once per run."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import yaml

from clitools import AK, ak, train_args


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    d = tmp_path_factory.mktemp("teacher")
    ak("synth", "--out", "faces", "-n", 48, "--size", 32, "--seed", 3, "--quiet", cwd=d)
    return d


def _samples(root):
    from affectkit.data import read_dataset

    return read_dataset(root).samples


def test_training_targets_mix_the_teachers_probabilities(faces, tmp_path, monkeypatch):
    """Train-part targets are (1 - w) * own + w * teacher, the teacher's probabilities being what `predict`
    gives for the same image; other parts keep their labels; a second run reads the cached probabilities."""
    from affectkit.inference.predictor import Predictor
    from affectkit.training import teacher as T

    samples = _samples(faces / "faces")
    train = [s.key for s in samples[:30]]
    n = T.mix_teacher(samples, train, "ferplus", 0.3, cache=tmp_path / "t.npz")
    assert n == 30
    p = Predictor.load("ferplus", backend="onnx")
    for s in samples[:30:7]:
        probs = p.predict(str(s.image), detect=False)[0].probabilities
        want = 0.7 * np.eye(8)[s.expression] + 0.3 * np.array([probs[name] for name in p.expressions])
        np.testing.assert_allclose(s.soft_label, want, atol=1e-4)
    assert all(s.soft_label is None for s in samples[30:])

    def no_teacher(*a, **k):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(T, "teacher_probabilities", no_teacher)
    again = _samples(faces / "faces")
    T.mix_teacher(again, train, "ferplus", 0.3, cache=tmp_path / "t.npz")
    for a, b in zip(samples[:30], again[:30], strict=True):
        np.testing.assert_array_equal(a.soft_label, b.soft_label)
    with pytest.raises(AssertionError, match="ran again"):  # other training keys: the cache does not apply
        T.mix_teacher(_samples(faces / "faces"), train[:-1], "ferplus", 0.3, cache=tmp_path / "t.npz")


def test_an_unreadable_image_keeps_its_own_label(faces, tmp_path):
    from affectkit.data.records import Sample
    from affectkit.training.teacher import mix_teacher

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    good = _samples(faces / "faces")[0]
    votes = np.array([6, 2, 0, 0, 0, 0, 2, 0], dtype=np.float32) / 10
    samples = [Sample(bad, expression=0, soft_label=votes, key="bad"), good]
    with pytest.warns(UserWarning, match="1 training image"):
        assert mix_teacher(samples, ["bad", good.key], "ferplus", 0.5, decoded_store=False) == 1
    np.testing.assert_array_equal(samples[0].soft_label, votes)
    assert samples[1].soft_label is not None and samples[1].soft_label[good.expression] >= 0.5


def test_train_with_a_teacher_from_the_command_line(faces):
    """`--set teacher=ferplus`: the run keeps the probabilities and trains on soft targets; a teacher that does
    not exist is one clear line before any data is read."""
    r = ak(*train_args(out="kd"), "--set", "teacher=ferplus", "--set", "teacher_weight=0.4", cwd=faces)
    assert "training targets mixed at weight 0.4" in r.stdout
    cfg = yaml.safe_load((faces / "kd" / "config.yaml").read_text())
    assert cfg["teacher"] == "ferplus" and cfg["expression_loss"] == "soft_ce"
    with np.load(faces / "kd" / "teacher.npz") as z:
        probs = z["probs"]
        assert len(z["keys"]) == len(probs) > 0
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)

    r = subprocess.run(
        [*AK, *map(str, train_args(out="x")), "--set", "teacher=nowhere"],
        cwd=faces,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (faces / "x").exists()

    ak(*train_args(out="va"), "--set", "loss_expression=0", cwd=faces)  # a valence/arousal-only model
    r = subprocess.run(
        [*AK, *map(str, train_args(out="y")), "--set", "teacher=va"], cwd=faces, capture_output=True, text=True
    )
    assert r.returncode == 2 and "without expression labels" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (faces / "y").exists()


def test_an_ensemble_of_teachers_from_the_command_line(faces):
    """`--set teacher=[A,B]`: the targets mix the members' mean probabilities, each member run through its own
    preprocessing; the cache is the ensemble's own; an empty list is one clear line."""
    from affectkit.training import teacher as T

    ak(*train_args(out="member"), cwd=faces)
    r = ak(*train_args(out="ens"), "--set", "teacher=[ferplus,member]", cwd=faces)
    assert "teacher ferplus + member: " in r.stdout
    assert yaml.safe_load((faces / "ens" / "config.yaml").read_text())["teacher"] == ["ferplus", "member"]
    with np.load(faces / "ens" / "teacher.npz") as z:
        keys, probs, ident = z["keys"].tolist(), z["probs"], str(z["teacher_sha256"])
    by_key = {s.key: s for s in _samples(faces / "faces")}
    chosen = [by_key[k] for k in keys]
    names = ("ferplus", str(faces / "member"))  # the test runs elsewhere: the run folder by its full path
    members = [T.teacher_probabilities(chosen, m, decoded_store=False) for m in names]
    assert np.abs(members[0] - members[1]).max() > 0.05  # two different models: the mean is not either one
    np.testing.assert_allclose(probs, (members[0] + members[1]) / 2, atol=1e-5)
    assert ident == "+".join(T._identity(m) for m in names)

    r = subprocess.run(
        [*AK, *map(str, train_args(out="z")), "--set", "teacher=[]"], cwd=faces, capture_output=True, text=True
    )
    assert r.returncode == 2 and "teacher" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (faces / "z").exists()


@pytest.mark.parametrize("bad", [3, 2.5, [1, 2], [], {"a": 1}, [["ferplus"]]])
def test_a_teacher_is_a_name_or_a_list_of_names(bad):
    from affectkit.training.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match=r"\(teacher\): use a model .* or a list of them"):
        TrainConfig(teacher=bad)
    assert TrainConfig(teacher=["ferplus", "runs/a"]).teacher == ["ferplus", "runs/a"]
