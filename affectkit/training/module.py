"""The LightningModule: multi-task steps, epoch metrics, optimisers and schedules."""

from __future__ import annotations

import math
from typing import Any, cast

import lightning as L
import numpy as np
import torch

from affectkit.training.augment import augment_batch
from affectkit.training.checkpoint import META_KEY, model_meta
from affectkit.training.config import TrainConfig
from affectkit.training.depthwise import fp32_depthwise_on_cpu
from affectkit.training.losses import multitask_loss
from affectkit.training.resume_state import RESUME_KEY, restore_resume_state, resume_state

__all__ = ["RESUME_KEY", "AffectModule", "EpochEndCallback"]


class EpochEndCallback(L.Callback):
    """A callback that receives each finished training epoch once the module has logged all its metrics.

    Lightning runs callbacks' ``on_train_epoch_end`` before the module's, when the epoch's train metrics are not
    logged yet; the module calls ``write_epoch`` on every callback of this type at the end of its own hook.
    """

    def write_epoch(self, trainer: L.Trainer, module: AffectModule) -> None:
        raise NotImplementedError


class AffectModule(L.LightningModule):
    """Wraps an ``AffectModel``; ``config`` is a plain dict of `TrainConfig` fields (saved as hyper-parameters)."""

    mean: torch.Tensor  # input normalisation, registered as buffers so they follow the device
    std: torch.Tensor

    def __init__(
        self,
        config: dict[str, Any],
        class_weight: list[float] | None = None,
        preprocess: dict[str, Any] | None = None,
        heads: dict[str, bool] | None = None,
        tta: bool = False,
    ):
        """``preprocess`` (a stored ``Preprocess`` dict) restores a trained model's contract; None builds it from
        ``config``. ``heads`` says which heads have labels and a loss weight (stored with the model). ``tta``:
        validation and test average each prediction with that of the mirrored image (an evaluation choice, not
        stored with the model)."""
        super().__init__()
        self.save_hyperparameters(ignore=["tta"])
        self.tta = bool(tta)
        from affectkit.models import create_model
        from affectkit.preprocess import Preprocess, heads_from_config

        self.cfg = TrainConfig(**config)
        # a run from a trained model gets all its weights from it (see run.py), none from ImageNet
        weights = "none" if self.cfg.initial_checkpoint else self.cfg.weights
        self.model = create_model(
            self.cfg.backbone, weights=weights, dropout=self.cfg.dropout, num_classes=self.cfg.num_classes
        )
        fp32_depthwise_on_cpu(self.model)  # bf16 depthwise backward is slow on CPUs (see depthwise.py)
        self.contract = (
            Preprocess.from_dict(preprocess)
            if preprocess is not None
            else Preprocess.from_config(self.cfg.to_dict(), self.model.preprocess)
        )
        self.heads = dict(heads) if heads is not None else heads_from_config(config)
        self.register_buffer("mean", torch.tensor(self.contract.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.contract.std).view(1, 3, 1, 1), persistent=False)
        self.class_weight = torch.tensor(class_weight) if class_weight is not None else None
        self._outputs: dict[str, list[dict[str, torch.Tensor]]] = {"train": [], "val": [], "test": []}
        # Train-loss sums (loss * batch size) and sample count of the running epoch: kept here, not in Lightning's
        # logger state, so a checkpoint saved mid-epoch carries them and a resumed epoch reports the same means.
        self._train_sums: dict[str, torch.Tensor] = {}
        self._train_count = 0
        # multi-dataset runs: (dataset names, dataset of each validation sample), for per-dataset metrics
        self.val_sources: tuple[list[str], np.ndarray] | None = None
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.cfg.freeze_stages:
            self.model.freeze_backbone(self.cfg.freeze_stages)

    # -- inputs ------------------------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        # Preprocess.to_tensor's formula, on the device, with augmentation between the two steps
        x = images.float().div_(255)
        if train:
            c = self.cfg
            x = augment_batch(
                x, flip=c.aug_flip, affine=c.aug_affine, color=c.aug_color, erasing=c.aug_erasing, quality=c.aug_quality
            )
        x = (x - self.mean) / self.std
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor):
        return self.model(x)

    # -- steps -------------------------------------------------------------------------------------------
    def _step(self, batch, stage: str):
        if batch is None:  # every image of the batch was unreadable
            return None
        x = self.prepare(batch["image"], train=stage == "train")
        logits, va = self(x)
        if stage != "train" and self.tta:
            # test-time augmentation: average with the mirrored face (faces are near-symmetric)
            logits_f, va_f = self(x.flip(-1))
            logits, va = (logits + logits_f) / 2, (va + va_f) / 2
        c = self.cfg
        losses = multitask_loss(
            logits,
            va,
            batch,
            expression_loss=c.expression_loss,
            class_weight=self.class_weight,
            label_smoothing=c.label_smoothing,
            va_kind=c.va_loss,
            weights=(c.loss_expression, c.loss_valence, c.loss_arousal),
        )
        bs = x.shape[0]
        on_step = stage == "train"
        if on_step:
            for k, v in losses.items():
                acc = v.detach().float() * bs
                self._train_sums[k] = self._train_sums[k] + acc if k in self._train_sums else acc
            self._train_count += bs
        else:
            for k, v in losses.items():
                self.log(
                    f"{stage}_{k}",
                    v.detach(),
                    on_step=False,
                    on_epoch=True,
                    batch_size=bs,
                    sync_dist=True,
                    prog_bar=(k == "loss"),
                )
        probs = logits.detach().float().softmax(-1)
        exp = batch["expression"]
        m = exp >= 0
        if on_step and m.any():
            acc = (probs[m].argmax(-1) == exp[m]).float().mean()
            self.log(f"{stage}_acc", acc, on_step=on_step, on_epoch=False, prog_bar=True, batch_size=int(m.sum()))
        self._outputs[stage].append(
            {
                "probs": probs.cpu(),
                "va": va.detach().float().cpu(),
                "expression": exp.cpu(),
                "valence": batch["valence"].cpu(),
                "arousal": batch["arousal"].cpu(),
                "index": batch["index"].cpu(),
            }
        )
        return losses["loss"]

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    # -- epoch metrics -----------------------------------------------------------------------------------
    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        """``all_gather`` of one tensor (Lightning types it for any collection)."""
        return cast(torch.Tensor, self.all_gather(t))

    def gathered(self, stage: str) -> dict[str, np.ndarray]:
        """All of a stage's outputs, gathered over ranks, each sample once (sampler padding removed)."""
        outs = self._outputs[stage]
        if not outs:
            return {}
        cat = {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
        if self.trainer is not None and self.trainer.world_size > 1:
            n = torch.tensor([len(cat["index"])], device=self.device)
            sizes = self._gather(n).flatten()
            pad = int(sizes.max())
            gathered = {}
            for k, v in cat.items():
                p = torch.zeros((pad, *v.shape[1:]), dtype=v.dtype)
                p[: len(v)] = v
                g = self._gather(p.to(self.device)).cpu()
                gathered[k] = torch.cat([g[r, : int(sizes[r])] for r in range(len(sizes))])
            cat = gathered
        idx = cat["index"].numpy()
        _, first = np.unique(idx, return_index=True)  # DistributedSampler repeats samples to even out ranks
        return {k: v.numpy()[first] for k, v in cat.items()}

    def epoch_metrics(self, stage: str) -> dict[str, Any]:
        from affectkit.metrics import multitask_metrics, selection_score

        g = self.gathered(stage)
        self._outputs[stage] = []
        if not g:
            return {}
        import warnings

        with warnings.catch_warnings():  # undefined metrics early in training are expected; they show as NaN
            warnings.simplefilter("ignore")
            m = multitask_metrics(g["expression"], g["probs"], g["valence"], g["va"][:, 0], g["arousal"], g["va"][:, 1])
        m["score"] = selection_score(m)
        m["_arrays"] = g
        return m

    def _log_epoch(self, stage: str):
        m = self.epoch_metrics(stage)
        if not m:
            return m
        flat = {
            f"{stage}_accuracy": m.get("accuracy"),
            f"{stage}_f1_macro": m.get("f1_macro"),
            f"{stage}_score": m.get("score"),
        }
        for dim in ("valence", "arousal"):
            for k in ("rmse", "ccc"):
                flat[f"{stage}_{dim}_{k}"] = (m.get(dim) or {}).get(k)
        for k, v in flat.items():
            if v is not None:
                v = float(v)
                # NaN would make checkpoint selection raise: an undefined score ranks lowest
                if k.endswith("_score") and math.isnan(v):
                    v = -1.0
                self.log(k, v, prog_bar=k in (f"{stage}_accuracy", f"{stage}_score"), sync_dist=False)
        if stage == "val" and self.val_sources is not None:
            self._log_per_source(m["_arrays"])
        return m

    def _log_per_source(self, g: dict[str, np.ndarray]) -> None:
        """``val/<dataset>/<metric>`` for each dataset of a multi-dataset run, on the labels it has."""
        import warnings

        from affectkit.metrics import multitask_metrics

        names, of_sample = self.val_sources  # type: ignore[misc]
        src = of_sample[g["index"]]
        for i, name in enumerate(names):
            sel = src == i
            if not sel.any():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = multitask_metrics(
                    g["expression"][sel],
                    g["probs"][sel],
                    g["valence"][sel],
                    g["va"][sel, 0],
                    g["arousal"][sel],
                    g["va"][sel, 1],
                )
            values = {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"]} if m["n_expression"] else {}
            for dim in ("valence", "arousal"):
                if m[f"n_{dim}"]:
                    values.update({f"{dim}_rmse": m[dim]["rmse"], f"{dim}_ccc": m[dim]["ccc"]})
            for k, v in values.items():
                self.log(f"val/{name}/{k}", float(v), sync_dist=False)

    def _log_train_losses(self) -> None:
        if not self._train_sums:
            return
        keys = sorted(self._train_sums)
        sums = torch.stack(
            [self._train_sums[k] for k in keys] + [torch.tensor(float(self._train_count), device=self.device)]
        )
        if self.trainer is not None and self.trainer.world_size > 1:
            sums = self._gather(sums).reshape(-1, len(keys) + 1).sum(0)
        for k, v in zip(keys, (sums[:-1] / sums[-1].clamp(min=1)).tolist(), strict=True):
            self.log(f"train_{k}", v, prog_bar=(k == "loss"), sync_dist=False)
        self._train_sums, self._train_count = {}, 0

    def on_train_epoch_end(self):
        self._log_train_losses()
        self._log_epoch("train")
        for cb in self.trainer.callbacks:  # see EpochEndCallback
            if isinstance(cb, EpochEndCallback):
                cb.write_epoch(self.trainer, self)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            self._outputs["val"] = []
            return
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self.test_results = self.epoch_metrics("test")

    def on_train_epoch_start(self):
        c = self.cfg
        if c.freeze_epochs:
            if self.current_epoch < c.freeze_epochs:
                self.model.freeze_backbone(None)
            else:
                self.model.unfreeze_backbone()
                if c.freeze_stages:
                    self.model.freeze_backbone(c.freeze_stages)

    # -- optimisation ------------------------------------------------------------------------------------
    def configure_optimizers(self):
        from affectkit.training.optim import build_optimizer, build_scheduler, scheduled

        opt = build_optimizer(self.model, self.cfg)
        if not scheduled(self.cfg):
            # estimated_stepping_batches builds the train loader, drawing from the RNG: only when a schedule
            # needs it, so runs without one (and their exact resume) draw as they always did
            return opt
        spe = max(1, self.trainer.estimated_stepping_batches) // max(1, self.trainer.max_epochs)
        # the schedule spans cfg.epochs even when stop_after_epochs ends the run earlier
        sched = build_scheduler(opt, self.cfg, steps_per_epoch=spe, total_steps=spe * self.cfg.epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[META_KEY] = model_meta(self.model, self.cfg.to_dict(), self.contract, self.heads)
        if self._trainer is not None and self.trainer.state.fn == "fit":
            checkpoint[RESUME_KEY] = resume_state(self)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get(RESUME_KEY)
        if state is not None and self._trainer is not None:
            restore_resume_state(self, state)
