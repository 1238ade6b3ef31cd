"""Training end to end: train -> evaluate -> report -> compare, learning, collapse, run-folder safety."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affectkit.cli import main
from affectkit.training.augment import augment_batch
from affectkit.training.config import load_config
from affectkit.training.losses import balanced_class_weights, ccc_loss, multitask_loss, soft_cross_entropy

TINY = ["--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--batch-size", "32", "--lr", "0.002"]


def test_end_to_end_cli(synth_small, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(synth_small), *TINY, "--epochs", "1", "--out", str(run)]) == 0
    for f in (
        "config.yaml",
        "split.json",
        "metrics.csv",
        "metrics.json",
        "train_summary.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
    ):
        assert (run / f).is_file(), f
    rows = json.loads((run / "metrics.json").read_text())
    assert len(rows) == 1 and {"train_loss", "val_loss", "val_accuracy", "val_score"} <= set(rows[0])
    split = json.loads((run / "split.json").read_text())
    parts = split.get("splits", split)
    n = {k: len(v) for k, v in parts.items() if k in ("train", "val", "test")}
    assert sum(n.values()) == 320 and abs(n["test"] - 64) <= 2  # 80/20 with val carved from train

    assert main(["evaluate", str(run)]) == 0
    m = json.loads((run / "eval" / "test_metrics.json").read_text())
    for k in (
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "kappa",
        "krippendorff_alpha",
        "auc_roc",
        "auc_pr",
        "per_class",
        "confusion_matrix",
        "n",
    ):
        assert k in m
    assert set(m["valence"]) >= {"rmse", "corr", "sagr", "ccc"} and set(m["arousal"]) >= {"rmse", "corr", "sagr", "ccc"}
    assert m["n"] == n["test"]
    assert np.asarray(m["confusion_matrix"]).sum() == n["test"]

    assert main(["report", str(run)]) == 0
    html = (run / "report" / "index.html").read_text()
    assert "data:image/png;base64" in html
    assert main(["compare", str(run), str(run), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "comparison.csv").is_file()


def test_refuses_to_overwrite_and_resume_needs_checkpoint(synth_small, tmp_path, capsys):
    run = tmp_path / "taken"
    run.mkdir()
    (run / "something").write_text("x")
    assert main(["train", "--data", str(synth_small), *TINY, "--epochs", "1", "--out", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--data", str(synth_small), *TINY, "--resume", "--out", str(tmp_path / "new")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    # --out RUN --resume alone (no --data): the missing run is what is wrong, not the missing data
    assert main(["train", "--resume", "--out", str(tmp_path / "new")]) == 2
    assert "new: nothing to resume" in capsys.readouterr().err


def test_model_learns_far_above_chance(tmp_path):
    """A small backbone on synthetic faces reaches high accuracy and VA agreement within a bounded budget."""
    from affectkit.data.synth import generate
    from affectkit.evaluation import evaluate
    from affectkit.training.run import train

    # Nuisance off: this checks that the pipeline learns, in a budget the default suite can afford (~1 min).
    data = generate(tmp_path / "faces", 3000, seed=3, size=40, workers=1, difficulty=0.0)
    cfg = load_config(
        None,
        data=str(data),
        backbone="resnet18",
        weights="none",
        image_size=40,
        batch_size=32,
        epochs=8,
        optimizer="adamw",
        lr=2e-3,
        weight_decay=0.01,
        schedule="cosine",
        warmup_epochs=0.3,
        va_loss="ccc+mse",
        aug_affine=0.3,
        progress=False,
    )
    run = train(cfg, out=tmp_path / "run")
    res = evaluate(run)
    assert res["accuracy"] >= 0.9, res["accuracy"]  # chance is 0.125
    assert res["valence"]["ccc"] >= 0.7 and res["arousal"]["ccc"] >= 0.7, (res["valence"], res["arousal"])
    assert res["warnings"] == []


def test_collapsed_model_is_flagged(synth_small, tmp_path):
    """A model that predicts one class and saturated valence/arousal is reported loudly."""
    from affectkit.evaluation import evaluate
    from affectkit.models import create_model
    from affectkit.training.checkpoint import save_model_checkpoint

    model = create_model("resnet18", weights="none")
    _set_constant_head(model)
    cfg = load_config(None, data=str(synth_small), backbone="resnet18", weights="none", image_size=32).to_dict()
    ckpt = save_model_checkpoint(model, tmp_path / "collapsed.ckpt", cfg)
    with pytest.warns(UserWarning, match="collapse"):
        res = evaluate(ckpt, split="all", out=tmp_path / "m.json")
    text = " ".join(res["warnings"])
    assert "Sad" in text
    assert any("valence" in w for w in res["warnings"]) and any("arousal" in w for w in res["warnings"])

    # a valence/arousal head trained with loss weight 0 (FER+ recipe) is not checked: only the class collapse
    cfg.update(loss_valence=0.0, loss_arousal=0.0)
    ckpt = save_model_checkpoint(model, tmp_path / "no_va.ckpt", cfg)
    with pytest.warns(UserWarning, match="collapse"):
        res = evaluate(ckpt, split="all", out=tmp_path / "m2.json")
    assert res["warnings"] and all("valence" not in w and "arousal" not in w for w in res["warnings"])


def _set_constant_head(model):
    """Zero every weight of the head and bias it to class Sad and valence/arousal at +1."""
    with torch.no_grad():
        linears = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
        for lin in linears:
            lin.weight.zero_()
            lin.bias.zero_()
        cls = next(lin for lin in linears if lin.out_features == 8)
        va = next(lin for lin in linears if lin.out_features == 2)
        cls.bias[2] = 5.0
        va.bias.fill_(5.0)


def test_losses():
    t = torch.randn(200)
    t = t - t.mean()  # centred: CCC(-t, t) is exactly -1 only when the means agree
    assert ccc_loss(t, t).item() == pytest.approx(0.0, abs=1e-5)
    assert ccc_loss(-t, t).item() == pytest.approx(2.0, abs=1e-4)
    from affectkit.metrics import ccc

    p = t * 0.5 + 0.3 * torch.randn(200)
    assert 1 - ccc_loss(p, t).item() == pytest.approx(ccc(t.numpy(), p.numpy()), abs=1e-5)
    w = balanced_class_weights([10, 30, 0, 60, 0, 0, 0, 0])
    assert w[2] == 0 and w[0] > w[1] > w[3] and w[w > 0].mean().item() == pytest.approx(1.0)
    s = balanced_class_weights([10, 40, 0, 90, 0, 0, 0, 0], power=0.5)  # "sqrt": ratios 3 : 1.5 : 1
    assert s[2] == 0 and s[0] / s[3] == pytest.approx(3.0) and s[1] / s[3] == pytest.approx(1.5)
    assert s[s > 0].mean().item() == pytest.approx(1.0)
    # class weights reach the soft (vote-distribution) loss too: one-hot targets give weighted CE exactly
    logits, y = torch.randn(6, 8), torch.tensor([0, 1, 3, 3, 7, 1])
    assert soft_cross_entropy(logits, F.one_hot(y, 8).float(), s).item() == pytest.approx(
        F.cross_entropy(logits, y, weight=s).item(), rel=1e-6
    )
    soft = torch.softmax(torch.randn(6, 8), 1)
    assert soft_cross_entropy(logits, soft, s).item() != pytest.approx(soft_cross_entropy(logits, soft).item())
    nan = torch.full((6,), float("nan"))
    vb = {"expression": y, "soft": soft, "valence": nan, "arousal": nan}
    weighted = multitask_loss(logits, torch.zeros(6, 2), vb, expression_loss="soft_ce", class_weight=s)
    assert weighted["loss"].item() == pytest.approx(soft_cross_entropy(logits, soft, s).item())
    batch = {
        "expression": torch.tensor([1, -1, 3]),
        "soft": torch.zeros(3, 8),
        "valence": torch.tensor([0.5, float("nan"), -0.2]),
        "arousal": torch.tensor([float("nan")] * 3),
    }
    logits = torch.randn(3, 8, requires_grad=True)
    va = torch.tanh(torch.randn(3, 2, requires_grad=True))
    out = multitask_loss(logits, va, batch, va_kind="mse")
    assert torch.isfinite(out["loss"]) and out["loss_arousal"].item() == 0.0
    out["loss"].backward()
    assert logits.grad[1].abs().sum() == 0  # the unlabelled row gets no expression gradient


def test_augment_batch_keeps_range_and_shape():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 24, 24)
    y = augment_batch(x, flip=True, affine=1.0, color=0.3, erasing=0.5)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(x, y)
    flipped = augment_batch(x, flip=True)
    for i in range(16):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def test_quality_augmentation_degrades_only_the_drawn_images():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 48, 48)
    assert torch.equal(augment_batch(x, flip=False, quality=0.0), x)
    y = augment_batch(x, flip=False, quality=1.0)
    assert y.shape == x.shape and y.dtype == x.dtype and y.min() >= 0 and y.max() <= 1
    assert all(not torch.allclose(y[i], x[i], atol=1e-3) for i in range(32)), "p=1 degrades every image"
    smooth = torch.rand(32, 3, 6, 6).repeat_interleave(8, 2).repeat_interleave(8, 3)  # blocky: loses detail
    z = augment_batch(smooth, flip=False, quality=1.0)
    assert (z - smooth).abs().mean() < 0.2, "a degraded face is still the same face"
    half = augment_batch(x, flip=False, quality=0.5)
    changed = sum(not torch.equal(half[i], x[i]) for i in range(32))
    assert 4 < changed < 28
    assert augment_batch(x.bfloat16(), flip=False, quality=1.0).dtype == torch.bfloat16


def test_config_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("backbone: vgg16\nepochs: 3\nlr: 0.01\n")
    cfg = load_config(p, epochs=5, lr=None)
    assert cfg.backbone == "vgg16" and cfg.epochs == 5 and cfg.lr == 0.01 and cfg.batch_size == 32
    with pytest.raises(ValueError, match="unknown config option"):
        load_config(None, epoch=3)


def test_free_folder_never_reuses_a_taken_folder(tmp_path):
    from affectkit.training.run import free_folder

    base = tmp_path / "affectkit_demo"
    assert free_folder(base) == base
    base.mkdir()
    assert free_folder(base) == base  # empty: usable
    (base / "x").write_text("1")
    assert free_folder(base) == tmp_path / "affectkit_demo-2"
    (tmp_path / "affectkit_demo-2").mkdir()
    (tmp_path / "affectkit_demo-2" / "y").write_text("1")
    assert free_folder(base) == tmp_path / "affectkit_demo-3"


def test_train_leaves_the_callers_config_unchanged(synth_small, tmp_path):
    """train() resolves "auto" values and FER+ losses on its own copy; the config passed in stays as it was."""
    import copy

    from affectkit.training.config import TrainConfig
    from affectkit.training.run import train

    cfg = TrainConfig(
        data=str(synth_small),
        backbone="resnet18",
        weights="none",
        image_size=32,
        batch_size=32,
        epochs=1,
        precision="auto",
        limit_train_batches=2,
        limit_val_batches=1,
        progress=False,
        extra={"notes": ["kept"]},
    )
    before = copy.deepcopy(cfg.to_dict())
    run = train(cfg, out=tmp_path / "run")
    assert cfg.to_dict() == before
    saved = load_config(run / "config.yaml")
    assert saved.precision != "auto" and saved.extra == {"notes": ["kept"]}


def test_training_without_the_decoded_store_warns_nothing(synth_small, tmp_path):
    """``cache: false`` decodes each image as it is read: PIL's read-only arrays must not reach torch (it warns)."""
    from clitools import ak, train_args

    res = ak(*train_args(synth_small, "--set", "cache=false"), cwd=tmp_path)
    assert "not writable" not in res.stderr and "warning" not in res.stderr.lower(), res.stderr[-1500:]
