"""Weight averaging (``ema_decay``): validation, the checkpoints and so everything loaded from them (evaluate,
predict, export) use the exponential moving average of the weights; the raw weights travel along for resuming."""

from __future__ import annotations

import json

import pytest
import torch

from clitools import ak, train_args


def test_validation_checkpoints_and_evaluate_use_the_averaged_weights(synth_small, tmp_path):
    fp32 = ["--precision", "32-true", "--seed", "2"]  # evaluate runs in fp32: the same numbers as validation
    ak(*train_args(synth_small, *fp32, "--set", "ema_decay=0.9", batch_size=16, epochs=2), cwd=tmp_path)
    run = tmp_path / "run"
    summary = json.loads((run / "train_summary.json").read_text())
    ck = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    avg, raw = ck["state_dict"], ck["current_model_state"]
    assert avg.keys() == raw.keys()
    moved = max((avg[k].float() - raw[k].float()).abs().max().item() for k in avg if avg[k].is_floating_point())
    assert moved > 1e-3, "the checkpoint's weights are the raw ones, not their average"

    # evaluate loads the checkpoint's (averaged) weights and reproduces the kept epoch's validation to 1e-5:
    # validation measured those weights, not the raw ones, whose valence CCC would differ
    ak("evaluate", "run", "--split", "val", cwd=tmp_path)
    m = json.loads((run / "eval" / "val_metrics.json").read_text())
    row = json.loads((run / "metrics.json").read_text())[summary["best_epoch"]]
    assert row["val_accuracy"] == pytest.approx(m["accuracy"], abs=1e-6)
    assert row["val_valence_ccc"] == pytest.approx(m["valence"]["ccc"], abs=1e-5)
    assert row["val_arousal_ccc"] == pytest.approx(m["arousal"]["ccc"], abs=1e-5)
