"""Losses for the multi-task head: cross-entropy variants for expression, MSE and CCC for valence/arousal."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against a target distribution (FER+ vote "probability" mode, Barsoum et al. 2016).

    ``weight`` (one per class) weighs each class's share of the target and the mean is taken over the summed
    weights, as ``F.cross_entropy(weight=...)`` does: for one-hot targets the two are equal."""
    if weight is None:
        return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    wt = target * weight
    return -(wt * F.log_softmax(logits, dim=-1)).sum() / wt.sum().clamp(min=1e-12)


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - Lin's concordance correlation coefficient over the batch (population moments, as in the metric)."""
    pm, tm = pred.mean(), target.mean()
    pv, tv = pred.var(unbiased=False), target.var(unbiased=False)
    cov = ((pred - pm) * (target - tm)).mean()
    return 1 - 2 * cov / (pv + tv + (pm - tm) ** 2 + eps)


def va_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "ccc":
        return ccc_loss(pred, target)
    if kind in ("ccc+mse", "mse+ccc"):
        return ccc_loss(pred, target) + F.mse_loss(pred, target)
    raise ValueError(f"unknown va_loss {kind!r}: use mse, ccc or ccc+mse")


def balanced_class_weights(counts, power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency weights ``1 / count**power``, normalised to mean 1 over classes present (absent classes
    get 0). ``power=1`` is scikit-learn's "balanced" rule up to scale; ``power=0.5`` lifts a long tail less (a
    class 100 times rarer weighs 10 times more, not 100), so the frequent classes keep their accuracy."""
    c = torch.as_tensor(counts, dtype=torch.float32)
    w = torch.where(c > 0, c.clamp(min=1) ** -power, torch.zeros_like(c))
    present = (c > 0).sum().clamp(min=1)
    return w * present / w.sum().clamp(min=1e-12)


def multitask_loss(
    logits,
    va,
    batch,
    *,
    expression_loss="ce",
    class_weight=None,
    label_smoothing=0.0,
    va_kind="mse",
    weights=(1.0, 1.0, 1.0),
) -> dict[str, torch.Tensor]:
    """Per-task losses over the samples that have each label, and their weighted sum as ``loss``."""
    logits = logits.float()
    va = va.float()
    zero = logits.sum() * 0.0  # keeps the graph alive when a batch has no label of a task
    exp = batch["expression"]
    has_e = exp >= 0
    if has_e.any():
        cw = class_weight.to(logits.device) if class_weight is not None else None
        if expression_loss == "soft_ce":
            le = soft_cross_entropy(logits[has_e], batch["soft"][has_e].float(), cw)
        else:
            le = F.cross_entropy(logits[has_e], exp[has_e], weight=cw, label_smoothing=label_smoothing)
    else:
        le = zero
    out = {"loss_expression": le}
    for j, key in enumerate(("valence", "arousal")):
        t = batch[key].float()
        m = ~torch.isnan(t)
        out[f"loss_{key}"] = va_loss(va[m, j], t[m], va_kind) if m.sum() > 1 else zero
    we, wv, wa = weights
    out["loss"] = we * out["loss_expression"] + wv * out["loss_valence"] + wa * out["loss_arousal"]
    return out
