"""Checkpoints are loaded strictly: a file whose weights do not fit its model, or that cannot be resumed, is one
clear error line from the command (exit 2), never a traceback or a model evaluated with random weights."""

from __future__ import annotations

import subprocess

import pytest
import torch

from clitools import AK, ak, train_args


def run(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*AK, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    ak("synth", "--out", "faces", "-n", 48, "--size", 32, "--seed", 1, "--quiet", cwd=d)
    ak(*train_args(), cwd=d)
    return d


def _doctor(src, dst, fn):
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    fn(ckpt)
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda c: c.__setitem__("state_dict", {}), "missing"),
        (
            lambda c: (
                c["affectkit"].__setitem__("backbone", "mobilenet_v2")
                or c["affectkit"]["config"].__setitem__("backbone", "mobilenet_v2")
            ),
            "do not fit",
        ),
        (
            lambda c: c.__setitem__("state_dict", {k: v for k, v in c["state_dict"].items() if "head" not in k}),
            "missing",
        ),
    ],
    ids=["empty-weights", "other-backbone", "no-head"],
)
def test_weights_that_do_not_fit_are_refused(trained, damage, says):
    bad = _doctor(trained / "run" / "checkpoints" / "best.ckpt", trained / "bad.ckpt", damage)
    for verb in (
        ["evaluate", bad, "--data", "faces"],
        ["predict", bad, "faces/images", "--no-detect"],
        ["export", bad, "--out", "bad.onnx"],
    ):
        r = run(*verb, cwd=trained)
        assert r.returncode == 2, (verb, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and says in r.stderr and "bad.ckpt" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_resume_refuses_another_backbone_and_minimal_checkpoints(trained):
    import shutil

    r = run(
        "train",
        "--data",
        "faces",
        "--backbone",
        "resnet50",
        "--weights",
        "none",
        "--epochs",
        2,
        "--image-size",
        32,
        "--out",
        "run",
        "--resume",
        "--set",
        "progress=false",
        cwd=trained,
    )
    assert r.returncode == 2 and "resnet18" in r.stderr and "Traceback" not in r.stderr, r.stderr
    other = trained / "minimal"
    (other / "checkpoints").mkdir(parents=True)
    shutil.copy(trained / "run" / "config.yaml", other / "config.yaml")
    from affectkit.training.checkpoint import load_model, save_model_checkpoint

    model, meta = load_model(trained / "run")
    save_model_checkpoint(model, other / "checkpoints" / "last.ckpt", meta["config"], meta["contract"], meta["heads"])
    r = run(*train_args("faces", "--resume", out="minimal", batch_size=None, epochs=2), cwd=trained)
    assert r.returncode == 2 and "not a training checkpoint" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_resume_refuses_another_weight_decay_grouping(trained):
    """Optimiser state holds one entry per parameter group: a run resumes only with its own grouping, and a run
    saved before decay_norm_bias existed (weight decay on everything) is told to pass the old value."""
    args = train_args("faces", "--resume", epochs=2)
    last = trained / "run" / "checkpoints" / "last.ckpt"
    r = run(*args, "--set", "decay_norm_bias=true", cwd=trained)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "trained with decay_norm_bias=false: resume with --set decay_norm_bias=false" in r.stderr

    old = trained / "old_run"
    (old / "checkpoints").mkdir(parents=True)
    _doctor(last, old / "checkpoints" / "last.ckpt", lambda c: c["affectkit"]["config"].pop("decay_norm_bias"))
    r = run(*args[:-5], "--out", "old_run", "--resume", "--set", "progress=false", cwd=trained)
    assert r.returncode == 2 and "resume with --set decay_norm_bias=true" in r.stderr, r.stderr


def test_resume_refuses_other_options_and_names_them(trained):
    """A run resumes with its own recipe: a changed option would mix two recipes in one run and overwrite its
    config.yaml. Options of where it runs (progress, workers, devices, ...) may change."""
    r = run(
        *train_args("faces", "--resume", "--lr", "0.01", "--set", "aug_color=0.3", "--set", "progress=false"),
        cwd=trained,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    err = r.stderr
    assert "lr: 0.0001 in the run, 0.01 now" in err and "aug_color: 0.0 in the run, 0.3 now" in err, err
    assert "progress" not in err and "affectkit train --out run --resume" in err, err


def test_head_with_hidden_trunk_is_restored_from_its_checkpoint(tmp_path):
    from affectkit.models import create_model
    from affectkit.training.checkpoint import load_model, save_model_checkpoint

    torch.manual_seed(0)
    model = create_model("resnet18", weights="none", hidden=16).eval()
    path = save_model_checkpoint(model, tmp_path / "m.ckpt")
    loaded, meta = load_model(path)
    assert meta["head_hidden"] == 16 and loaded.head.hidden == 16
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x), strict=True):
            torch.testing.assert_close(a, b)


def _params(run_dir) -> dict[str, torch.Tensor]:
    from affectkit.training.checkpoint import load_model

    model, _ = load_model(run_dir)
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_initial_checkpoint_starts_a_new_run_from_a_trained_model(trained):
    """A near-zero LR leaves the started weights as they were: they came from the given run, not from a fresh
    initialisation; a missing file or another backbone is one clear line before any data is read."""
    ak(
        *train_args(out="init", epochs=1),
        "--lr",
        1e-12,
        "--set",
        "weight_decay=0",
        "--set",
        "initial_checkpoint=run",
        cwd=trained,
    )
    before, after = _params(trained / "run"), _params(trained / "init")
    assert before.keys() == after.keys()
    for k in before:
        torch.testing.assert_close(after[k], before[k], atol=1e-6, rtol=0, msg=k)
    # the comparison could fail: the run's own starting point (seed 0's initialisation) is elsewhere
    from affectkit.models import create_model

    torch.manual_seed(0)
    fresh = dict(create_model("resnet18", weights="none").named_parameters())
    assert any(not torch.allclose(before[k], fresh[k], atol=1e-6, rtol=0) for k in before)

    r = run(*train_args(out="x", epochs=1), "--set", "initial_checkpoint=nowhere", cwd=trained)
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run(
        "train",
        "--data",
        "faces",
        "--backbone",
        "mobilenet_v2",
        "--weights",
        "none",
        "--image-size",
        32,
        "--epochs",
        1,
        "--out",
        "y",
        "--set",
        "progress=false",
        "--set",
        "initial_checkpoint=run",
        cwd=trained,
    )
    assert r.returncode == 2 and "set --backbone resnet18" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_stop_after_epochs_ends_early_on_the_longer_schedule(trained):
    """``stop_after_epochs`` runs the first epochs of the ``epochs``-long cosine schedule: its learning rates are
    those of the full run's first epochs, not of a run that is only that long."""
    import json

    sched = ("--set", "schedule=cosine", "--set", "warmup_epochs=0", "--lr", 0.01)
    ak(*train_args(out="full", epochs=4), *sched, cwd=trained)
    ak(*train_args(out="part", epochs=4), *sched, "--set", "stop_after_epochs=2", cwd=trained)

    def lrs(name):
        return [row["lr"] for row in json.loads((trained / name / "metrics.json").read_text())]

    assert len(lrs("full")) == 4 and len(lrs("part")) == 2
    assert json.loads((trained / "part" / "train_summary.json").read_text())["epochs_run"] == 2
    assert lrs("part") == pytest.approx(lrs("full")[:2])
    # a 2-epoch cosine ends its second epoch near zero; the 4-epoch one is about half-way down (0.005)
    assert lrs("part")[1] > 0.2 * 0.01
    # the rest of the schedule: resumed without the stop, the run ends as the full one did
    ak("train", "--out", "part", "--resume", "--set", "stop_after_epochs=null", cwd=trained)
    assert lrs("part") == pytest.approx(lrs("full"))
