"""DDP on CPU (gloo) through Lightning: metrics over the whole split, gathered across ranks, each sample once.

Lightning launches the extra ranks by re-running the command, so every run here is a `python -m affectkit.cli`
subprocess (pytest's own process never joins a process group).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clitools import train_args

ROOT = Path(__file__).parents[1]
N_FACES = 45  # odd: a DistributedSampler over 2 ranks pads one duplicate sample


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AFFECTKIT_CACHE"] = str(tmp / "cache")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for k in ("AFFECTKIT_RUN_DIR", "LOCAL_RANK", "RANK", "NODE_RANK", "WORLD_SIZE"):
        env.pop(k, None)
    return env


def _cli(env, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "affectkit.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, list) and v and isinstance(v[0], list):
            out[prefix + k] = np.asarray(v, dtype=float)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[prefix + k] = float(v)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A random-weight resnet18 checkpoint (evaluation needs no training) and 45 synthetic faces."""
    import torch

    from affectkit.data.synth import generate
    from affectkit.models import create_model
    from affectkit.training.checkpoint import save_model_checkpoint
    from affectkit.training.config import TrainConfig

    tmp = tmp_path_factory.mktemp("ddp")
    faces = generate(tmp / "faces", N_FACES, seed=4, size=32, workers=1)
    torch.manual_seed(0)
    model = create_model("resnet18", weights="none", dropout=0.0)
    cfg = TrainConfig(backbone="resnet18", weights="none", image_size=32, data=str(faces), precision="32-true")
    ckpt = save_model_checkpoint(model, tmp / "model" / "model.ckpt", cfg.to_dict())
    return tmp, faces, ckpt


def test_evaluate_one_vs_two_processes_identical(setup):
    tmp, _faces, ckpt = setup
    env = _env(tmp)
    res = {}
    for devices, strategy in ((1, "auto"), (2, "ddp")):
        out = tmp / f"eval{devices}" / "all_metrics.json"
        r = _cli(
            env,
            "evaluate",
            str(ckpt),
            "--split",
            "all",
            "--batch-size",
            "8",
            "--devices",
            str(devices),
            "--strategy",
            strategy,
            "--out",
            str(out),
        )
        # only rank 0 writes (and reports the path); the other rank computed the same gathered metrics
        assert r.stdout.count("metrics: ") == 1
        assert sorted(p.name for p in out.parent.iterdir()) == [
            "all_metrics.json",
            "all_predictions.csv",
            "all_predictions.npz",
        ]
        res[devices] = (json.loads(out.read_text()), np.load(out.with_name("all_predictions.npz")))
    (m1, p1), (m2, p2) = res[1], res[2]
    assert m1["n"] == m2["n"] == N_FACES  # the sampler's padding duplicate was removed
    assert np.asarray(m2["confusion_matrix"]).sum() == N_FACES
    assert len(set(p2["keys"].tolist())) == len(p2["keys"]) == N_FACES
    assert p1["keys"].tolist() == p2["keys"].tolist()
    np.testing.assert_allclose(p2["y_prob"], p1["y_prob"], atol=1e-6)
    f1, f2 = _flat(m1), _flat(m2)
    assert f1.keys() == f2.keys() and len(f1) > 20
    for k in f1:
        a, b = np.asarray(f1[k]), np.asarray(f2[k])
        assert np.allclose(a, b, atol=1e-6, equal_nan=True), k
    assert not math.isnan(f1["accuracy"])


@pytest.mark.slow
def test_ddp_training_two_cpu_processes(setup):
    """Train with 2 gloo ranks; the logged validation accuracy is over the whole (odd-sized) val part: the same
    value a single-process evaluation of the saved checkpoint gives on that part."""
    tmp, faces, _ = setup
    env = _env(tmp)
    run = tmp / "ddp_run"
    ddp = ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--precision", "32-true"]
    r = _cli(
        env,
        *map(str, train_args(faces, *ddp, "--set", "val_size=0.2", out=run, batch_size=8)),
    )
    # only rank 0 prints; both ranks agreed on the folder (a disagreeing rank would have made ddp_run-2)
    assert r.stdout.count("run folder:") == 1 and f"run folder: {run}" in r.stdout
    assert not (tmp / "ddp_run-2").exists()
    summary = json.loads((run / "train_summary.json").read_text())
    rows = json.loads((run / "metrics.json").read_text())
    assert len(rows) == 1 and summary["n_val"] % 2 == 1
    ev = _cli(env, "evaluate", str(run), "--split", "val", "--devices", "1")
    m = json.loads((run / "eval" / "val_metrics.json").read_text())
    assert m["n"] == summary["n_val"]
    assert rows[0]["val_accuracy"] == pytest.approx(m["accuracy"], abs=1e-6)
    assert rows[0]["val_valence_ccc"] == pytest.approx(m["valence"]["ccc"], abs=1e-5)
    assert "metrics:" in ev.stdout
