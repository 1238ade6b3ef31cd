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
