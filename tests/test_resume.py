"""Crash safety: a run killed with SIGKILL mid-epoch resumes to the same metrics; checkpoints are written
atomically and load with ``weights_only=True``; crafted pickles are refused; run folders are never overwritten."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from affectkit.cli import main

from clitools import AK, train_args

ROOT = Path(__file__).parents[1]
N_STEPS_PER_EPOCH = 10  # 120 faces -> 84 train at batch 8, last partial batch dropped


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    options = ["--lr", "0.002", "--seed", "3", "--deterministic", "--set", "ckpt_every_n_steps=3"]
    augment = ["--set", "aug_affine=0.5", "--set", "aug_color=0.2", "--set", "aug_erasing=0.3"]
    return [*AK, *map(str, train_args(data, *options, *augment, *extra, out=out, batch_size=8, epochs=2))]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AFFECTKIT_CACHE"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AFFECTKIT_RUN_DIR", None)
    return env


def _rows(run: Path) -> list[dict]:
    rows = json.loads((run / "metrics.json").read_text())
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def _assert_same_rows(full: Path, run: Path) -> None:
    """Both runs logged the same epochs with the same metrics."""
    a, b = _rows(full), _rows(run)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [0, 1]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], abs=1e-5, rel=1e-5), (ra["epoch"], k)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    from affectkit.data.synth import generate

    return generate(tmp_path_factory.mktemp("resume") / "faces", 120, seed=1, size=32, workers=1)


# with weight averaging, the averaged and the raw weights both resume
@pytest.mark.parametrize("extra", [(), ("--set", "ema_decay=0.8")], ids=["plain", "ema"])
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(faces, tmp_path, extra, capsys):
    env = _env(tmp_path)
    full, crash = tmp_path / "full", tmp_path / "crash"
    subprocess.run(_args(faces, full, *extra), env=env, check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(_args(faces, crash, *extra), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = crash / "checkpoints" / "last.ckpt"
    t0 = time.time()
    try:
        while not last.is_file():
            assert proc.poll() is None, "training ended before writing a checkpoint"
            assert time.time() - t0 < 240, "no checkpoint within 240 s"
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (crash / "train_summary.json").is_file()  # it really died before the end
    ck = torch.load(last, map_location="cpu", weights_only=True)  # the Lightning checkpoint is weights_only-safe
    step = ck["global_step"]
    assert step % N_STEPS_PER_EPOCH != 0, f"checkpoint at step {step} is at an epoch boundary, not mid-epoch"
    assert ck["epoch"] == 0 and "affectkit_resume" in ck

    # a taken folder is refused without --resume ...
    with pytest.raises(FileExistsError, match="already holds a run"):
        from affectkit.training.config import load_config
        from affectkit.training.run import train

        train(load_config(data=str(faces)), out=crash)
    # ... and continued with it: the whole command again plus --resume, or --out and --resume alone (its own options)
    again = _args(faces, crash, *extra, "--resume") if not extra else [*AK, "train", "--out", str(crash), "--resume"]
    subprocess.run(again, env=env, check=True, capture_output=True, timeout=300)
    _assert_same_rows(full, crash)
    sa = json.loads((full / "train_summary.json").read_text())
    sb = json.loads((crash / "train_summary.json").read_text())
    assert sb["best_epoch"] == sa["best_epoch"] and sb["best_score"] == pytest.approx(sa["best_score"], abs=1e-6)
    ca = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    cb = torch.load(crash / "checkpoints" / "last.ckpt", weights_only=True)
    for key in ("state_dict", "current_model_state") if extra else ("state_dict",):
        wa, wb = ca[key], cb[key]
        assert max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) < 1e-5, key
    if not extra:
        _killed_before_first_checkpoint_starts_again(faces, full, tmp_path / "unstarted", env, capsys)


def _killed_before_first_checkpoint_starts_again(
    faces: Path, full: Path, run: Path, env: dict[str, str], capsys
) -> None:
    """A run killed before its first checkpoint (e.g. in the teacher pass) leaves its config and split only:
    plain ``train`` refuses the folder and says to pass --resume, which starts it again from the beginning."""
    run.mkdir()
    for name in ("config.yaml", "split.json"):
        (run / name).write_bytes((full / name).read_bytes())
    refused = subprocess.run(_args(faces, run), env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert "stopped before its first checkpoint" in refused.stderr and "--resume" in refused.stderr
    # its split.json was made with its options: starting it again with others is refused like any resume
    other = main([str(a) for a in _args(faces, run, "--resume", "--lr", "0.01")[len(AK) :]])
    assert other == 2 and "lr: 0.002 in the run, 0.01 now" in capsys.readouterr().err
    again = subprocess.run(_args(faces, run, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "starting it from the beginning" in again.stdout
    _assert_same_rows(full, run)


def test_resume_refuses_crafted_pickle(faces, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(run / "checkpoints" / "last.ckpt", "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    rc = main([*map(str, train_args(faces, "--resume", out=run, batch_size=None))])
    assert rc == 2
    err = capsys.readouterr().err
    assert "last.ckpt" in err and "weights_only" in err
    assert not marker.exists()

    from affectkit.training.checkpoint import read_checkpoint

    with pytest.raises(ValueError, match="not a loadable affectkit checkpoint"):
        read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert not marker.exists()


def test_atomic_checkpoint_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    from affectkit.training.run import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "step": 1}, path)

    real_save = torch.save

    def dying_save(obj, f, *a, **k):  # writes half the bytes, then the process "dies"
        real_save(obj, f, *a, **k)
        f.seek(0)
        f.truncate(10)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "step": 2}, path)
    monkeypatch.undo()
    ck = io.load_checkpoint(path)
    assert ck["step"] == 1 and torch.equal(ck["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp file left behind
    with pytest.raises(FileNotFoundError):
        io.load_checkpoint(tmp_path / "nope.ckpt")


def test_last_checkpoint_is_the_last_epoch_when_it_is_not_the_best(faces, tmp_path, monkeypatch):
    """After an epoch that is not a new best, last.ckpt is still that epoch's (--resume continues from it)."""
    import itertools

    import affectkit.metrics
    from affectkit.training.config import load_config
    from affectkit.training.run import train

    worse = itertools.count()
    monkeypatch.setattr(affectkit.metrics, "selection_score", lambda m: -float(next(worse)))  # every epoch worse
    cfg = load_config(
        data=str(faces), backbone="resnet18", weights="none", image_size=32, batch_size=8, epochs=3, progress=False
    )
    run = train(cfg, out=tmp_path / "run")
    best, last = (torch.load(run / "checkpoints" / f, weights_only=True) for f in ("best.ckpt", "last.ckpt"))
    assert best["epoch"] == 0
    assert last["epoch"] == 2 and last["global_step"] == 3 * N_STEPS_PER_EPOCH
