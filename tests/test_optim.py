"""Optimiser groups (weight decay, discriminative LRs) and LR schedules built from torch's schedulers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from affectkit.training.config import TrainConfig
from affectkit.training.optim import build_optimizer, build_scheduler, param_groups


class _Tiny(nn.Module):
    """backbone/head split like AffectModel, with a norm layer and biases in both."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1, bias=False))
        self.head = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 8))


def _old_factor(step: int, cfg: TrainConfig, spe: int, total: int) -> float:
    """The LambdaLR factor the module used before the torch schedulers (copied verbatim)."""
    warm = int(cfg.warmup_epochs * spe)
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "cosine":
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if cfg.schedule == "step":
        return cfg.step_gamma ** ((step // spe) // max(1, cfg.step_size))
    return 1.0


SCHEDULES = [
    dict(schedule="none", warmup_epochs=1.5),
    dict(schedule="cosine", warmup_epochs=0),
    dict(schedule="cosine", warmup_epochs=2),
    dict(schedule="cosine", warmup_epochs=0.1),  # warm-up of exactly one step
    dict(schedule="step", warmup_epochs=0, step_size=2, step_gamma=0.5),
    dict(schedule="step", warmup_epochs=1.5, step_size=1, step_gamma=0.3),  # a decay due during warm-up
    dict(schedule="step", warmup_epochs=0.5, step_size=3, step_gamma=0.1, optimizer="sgd"),
]


@pytest.mark.parametrize("changes", SCHEDULES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_schedule_matches_the_old_lambda_at_every_step_and_group(changes):
    """Same LR as the old hand-written LambdaLR for every parameter group at every step, to 1e-6 relative."""
    cfg = TrainConfig(lr=0.01, backbone_lr_mult=0.1, epochs=7, **changes)
    spe = 10
    total = spe * cfg.epochs
    model = _Tiny()
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=spe, total_steps=total)
    base = [g["lr"] for g in param_groups(model, cfg)]
    assert len(base) == 4 and base == [1e-3, 1e-3, 1e-2, 1e-2]
    for step in range(total):
        for g, b in zip(opt.param_groups, base, strict=True):
            assert g["lr"] == pytest.approx(b * _old_factor(step, cfg, spe, total), rel=1e-6, abs=1e-15), step
        opt.step()
        sched.step()


def test_no_schedule_and_no_warmup_is_no_scheduler():
    assert build_scheduler(build_optimizer(_Tiny(), TrainConfig()), TrainConfig(), 10, 100) is None


def _decay_of(opt: torch.optim.Optimizer) -> dict[int, tuple[float, float]]:
    return {id(p): (g["weight_decay"], g["lr"]) for g in opt.param_groups for p in g["params"]}


def test_norm_weights_and_biases_get_no_weight_decay_by_default():
    from affectkit.models import create_model

    model = create_model("resnet18", weights="none")
    model.freeze_backbone(2)  # frozen parameters stay in the optimiser (they may be unfrozen later)
    cfg = TrainConfig(optimizer="adamw", lr=1e-3, backbone_lr_mult=0.1)
    by_id = _decay_of(build_optimizer(model, cfg))
    named = dict(model.named_parameters())
    assert set(by_id) == {id(p) for p in named.values()}
    one_d = [n for n, p in named.items() if p.ndim <= 1 or n.endswith(".bias")]
    assert any("bn" in n for n in one_d) and any(n.startswith("head.") for n in one_d)
    for n, p in named.items():
        wd, lr = by_id[id(p)]
        assert wd == (0.0 if n in one_d else 0.05), n
        assert lr == pytest.approx(1e-4 if n.startswith("backbone.") else 1e-3), n

    old = _decay_of(build_optimizer(model, cfg.updated(decay_norm_bias=True)))
    for n, p in named.items():  # the flag: weight decay on everything, LR multipliers as they were
        assert old[id(p)] == (0.05, pytest.approx(by_id[id(p)][1])), n


class _Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 8))


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_step_where_it_can_run_and_same_updates_as_the_default(name):
    cfg = TrainConfig(optimizer=name, lr=1e-2, backbone_lr_mult=0.1, weight_decay=0.1, precision="32-true")
    torch.manual_seed(0)
    a, b = _Plain(), _Plain()  # no bias before a norm layer: its gradient is rounding noise, which Adam amplifies
    b.load_state_dict(a.state_dict())
    fused, default = build_optimizer(a, cfg), build_optimizer(b, cfg.updated(precision="16-mixed"))
    assert fused.defaults["fused"] is True and not default.defaults.get("fused")
    assert not build_optimizer(_Tiny(), cfg.updated(precision="auto")).defaults.get("fused")
    x = torch.randn(2, 3, 5, 5)
    for _ in range(3):  # per-group LR and weight decay reach the fused kernel as they reach the default one
        for model, opt in ((a, fused), (b, default)):
            opt.zero_grad()
            model.head(model.backbone(x).mean((2, 3))).square().sum().backward()
            opt.step()
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), (n, (p - q).abs().max().item())
