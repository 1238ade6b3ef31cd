"""Optimiser parameter groups and learning-rate schedules, as `AffectModule.configure_optimizers` uses them."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch.optim import lr_scheduler

from affectkit.training.config import TrainConfig

OPTIMIZERS = ("adam", "adamw", "sgd")


def default_weight_decay(cfg: TrainConfig) -> float:
    """``weight_decay``, or when unset 0.05 for AdamW (decoupled) and 0 for Adam/SGD."""
    if cfg.weight_decay is not None:
        return float(cfg.weight_decay)
    return 0.05 if cfg.optimizer == "adamw" else 0.0


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Backbone groups at ``lr * backbone_lr_mult``, then head groups at ``lr`` (the head's group is last).

    As in timm (``param_groups_weight_decay``) and torchvision (``split_normalization_params``), weight decay
    skips 1-D parameters (BatchNorm/LayerNorm scales and shifts) and biases: shrinking them toward 0 only fights
    the normalisation. ``decay_norm_bias=True`` decays everything (one group per part, as before). Frozen
    parameters stay in their groups (timm's helper would drop them), so unfreezing after ``freeze_epochs`` trains
    them without rebuilding the optimiser.
    """
    wd = default_weight_decay(cfg)
    groups: list[dict[str, Any]] = []
    backbone, head = cast(torch.nn.Module, model.backbone), cast(torch.nn.Module, model.head)
    for part, lr in ((backbone, cfg.lr * cfg.backbone_lr_mult), (head, cfg.lr)):
        if cfg.decay_norm_bias:
            groups.append({"params": list(part.parameters()), "lr": lr, "weight_decay": wd})
            continue
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, p in part.named_parameters():
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        groups += [{"params": decay, "lr": lr, "weight_decay": wd}, {"params": no_decay, "lr": lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool | None = None) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over :func:`param_groups`, with PyTorch's fused kernel where it can run.

    The fused step (one kernel over every parameter) is faster than the default multi-tensor one on the CPU:
    ``bench/optimizer_step.py`` measured ResNet50's AdamW step at 39-61 ms default, 21-33 ms fused, of a
    ~500 ms demo training step (AMD EPYC, 2 cores). ``fused``: None decides by :func:`fused_step` (the
    precisions in ``FUSED_PRECISIONS``); devices without fused kernels get the default step either way.
    """
    groups = param_groups(model, cfg)
    kinds = {"adam": (torch.optim.Adam, {}), "adamw": (torch.optim.AdamW, {}),
             "sgd": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True})}  # fmt: skip
    if cfg.optimizer not in kinds:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}: use {', '.join(OPTIMIZERS)}")
    cls, extra = kinds[cfg.optimizer]
    if fused_step(cfg) if fused is None else fused:
        try:
            return cls(groups, lr=cfg.lr, fused=True, **extra)
        except RuntimeError:  # parameters on a device with no fused kernel
            pass
    return cls(groups, lr=cfg.lr, **extra)


# no gradient scaler (fp32 or bf16 weights): what the fused kernels take on every device that has them
FUSED_PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16")


def fused_step(cfg: TrainConfig) -> bool:
    """Whether the optimiser may use a fused step: no gradient scaler (so not ``16-mixed``,
    whose scaler unscales before clipping, nor ``auto`` before ``train`` resolves it)."""
    return cfg.precision in FUSED_PRECISIONS


def scheduled(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` asks for a learning-rate schedule (a warm-up or a decay)."""
    return not (cfg.schedule == "none" and cfg.warmup_epochs <= 0)


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, total_steps: int
) -> lr_scheduler.LRScheduler | None:
    """A per-step schedule: linear warm-up over ``warmup_epochs``, then cosine to 0 at ``total_steps``, step
    decay by ``step_gamma`` every ``step_size`` epochs, or constant. None when there is nothing to schedule.

    Warm-up step ``i`` (0-based) runs at ``(i + 1) / warm`` of the LR, so the first step already learns. Step
    decays fall on epoch boundaries counted from the start of training (epochs ``step_size``, ``2 * step_size``,
    ...), warm-up or not.
    """
    if not scheduled(cfg):
        return None
    spe, total = max(1, steps_per_epoch), max(1, total_steps)
    warm = int(cfg.warmup_epochs * spe)
    main: lr_scheduler.LRScheduler
    if cfg.schedule == "cosine":
        main = lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total - warm))
    elif cfg.schedule == "step":
        every = spe * cfg.step_size
        # MultiStepLR counts from the end of warm-up; shift the decays back onto absolute epoch boundaries (one
        # due during warm-up applies as soon as it ends, as a milestone at 0)
        main = lr_scheduler.MultiStepLR(
            opt, [max(0, m - warm) for m in range(every, total + every, every)], gamma=cfg.step_gamma
        )
    else:
        main = lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    if warm == 0:
        return main
    # a one-step warm-up runs at the full LR (1 / 1), yet still delays the main schedule by that step
    ramp = (
        lr_scheduler.LinearLR(opt, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1)
        if warm > 1
        else lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    )
    return lr_scheduler.SequentialLR(opt, [ramp, main], milestones=[warm])
