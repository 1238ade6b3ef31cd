"""`train()`, the function behind `affectkit train`: config resolution, data, model and the Lightning run.

The run folder helpers live in `affectkit.training.rundir`, the callbacks in `affectkit.training.callbacks`;
their names stay importable from here.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, EMAWeightAveraging, ModelCheckpoint

from affectkit.io import atomic_write, resolve_checkpoint
from affectkit.training.callbacks import EPOCH_COLUMNS, AtomicCheckpointIO, EpochMetricsWriter
from affectkit.training.checkpoint import check_resumable, load_initial_weights
from affectkit.training.config import ConfigError, TrainConfig, load_config, save_config
from affectkit.training.rundir import (
    RUN_DIR_ENV,
    RUN_FILES,
    check_same_options,
    discard_unstarted_run,
    free_folder,
    has_checkpoint,
    is_primary_process,
    make_run_dir,
    new_run_dir,
)
from affectkit.training.teacher import teachers

__all__ = [
    "EPOCH_COLUMNS",
    "RUN_DIR_ENV",
    "RUN_FILES",
    "AtomicCheckpointIO",
    "EpochMetricsWriter",
    "default_precision",
    "discard_unstarted_run",
    "free_folder",
    "is_primary_process",
    "make_run_dir",
    "new_run_dir",
    "quiet_lightning",
    "resolve_config",
    "train",
    "trained_heads",
]


def quiet_lightning() -> None:
    """Keep the engine's banners (accelerator tips, hardware lines) out of the user's terminal."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
    warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")  # inside Lightning's all_gather
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")  # --resume


def default_precision(accelerator: str = "auto") -> str:
    if torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    try:
        fast_bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except Exception:
        fast_bf16 = False
    return "bf16-mixed" if fast_bf16 else "32-true"


def train(cfg: TrainConfig, out: str | Path | None = None, resume: bool = False) -> Path:
    """Train one model as ``cfg`` says; returns the run folder (config, split, metrics, checkpoints).

    ``cfg`` is not modified (the resolved copy is saved as ``config.yaml``). The data are read and split before
    the run folder is created, and a new run that fails before its first checkpoint is removed again, so a
    failed run never blocks its ``--out``.
    """
    from affectkit.data import read_dataset
    from affectkit.data.sources import combine, data_sources, is_multi, multi_split, read_sources
    from affectkit.data.splits import load_split, make_split

    quiet_lightning()
    run = new_run_dir(out, cfg, resume, create=False)  # first: --resume of a folder holding no run says so
    if not cfg.data:
        raise ConfigError("no data given (data): pass --data PATH or set data: in the config")
    cfg = resolve_config(cfg)
    if cfg.initial_checkpoint and not resume:  # fail before the data are read, not after
        resolve_checkpoint(cfg.initial_checkpoint)
    for teacher in teachers(cfg.teacher):
        resolve_checkpoint(teacher)
    assert cfg.data is not None  # checked above; resolving keeps it
    primary = is_primary_process()
    if resume and not has_checkpoint(run):
        # killed before its first checkpoint: nothing to continue, so it starts again (with its own options, as
        # its split.json was made with them)
        check_same_options(load_config(run / "config.yaml").to_dict(), cfg.to_dict(), run / "config.yaml", run)
        resume = False
        if primary:
            print(f"{run} has no checkpoint yet (it stopped before the first one): starting it from the beginning")
    if resume:  # before the data are read: a run resumes only with its own recipe
        check_resumable(run / "checkpoints" / "last.ckpt", cfg.backbone, cfg.decay_norm_bias, cfg.to_dict())
    read_kw: dict[str, Any] = dict(
        strict=cfg.strict,
        label_mode=cfg.label_mode,
        numeric_classes=cfg.numeric_classes,
        peak_frames=cfg.ckplus_peak_frames,
    )
    if is_multi(cfg.data):  # each dataset read (and below split) on its own, keys prefixed with its name
        sources = data_sources(cfg.data, cfg.format)
        parts = read_sources(sources, **read_kw)
        records = combine(parts)
    else:
        assert isinstance(cfg.data, str)  # one dataset
        records = read_dataset(cfg.data, format=cfg.format, **read_kw)
    split_kw: dict[str, Any] = dict(
        test_size=cfg.test_size, val_size=cfg.val_size, seed=cfg.seed, split_by=cfg.split_by
    )
    split_path = run / "split.json"
    if split_path.is_file():
        split = load_split(split_path)
    elif cfg.split_file:
        split = load_split(cfg.split_file)
    elif is_multi(cfg.data):
        split = multi_split(parts, sources, **split_kw)
    else:  # deterministic in (records, seed): other ranks compute the same split
        split = make_split(records, **split_kw)
    created = make_run_dir(run)
    os.environ[RUN_DIR_ENV] = str(run.resolve())
    try:
        _fit(cfg, run, records, split, resume, primary)
    except BaseException:
        if primary and not resume:
            discard_unstarted_run(run, created)
        raise
    return run


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """A copy of ``cfg`` with what "auto" and FER+ vote targets mean here filled in (as saved in the run)."""
    changes: dict[str, Any] = {}
    if (cfg.label_mode == "distribution" or cfg.teacher) and cfg.expression_loss == "ce":
        changes["expression_loss"] = "soft_ce"
    if cfg.precision == "auto":
        changes["precision"] = default_precision(cfg.accelerator)
    return cfg.updated(**changes) if changes else cfg.model_copy(deep=True)  # never shares a list or dict


def _fit(cfg: TrainConfig, run: Path, records, split, resume: bool, primary: bool) -> None:
    """Everything of `train` after the run folder exists: split and config files, data, model, Lightning."""
    from affectkit.data.sources import data_sources, is_multi
    from affectkit.models.registry import get_spec
    from affectkit.preprocess import Preprocess

    if primary:
        _save_run_files(cfg, run, split)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # The preprocessing contract is fixed here, once, and travels with every checkpoint of the run.
    contract = Preprocess.from_config(cfg.to_dict(), get_spec(cfg.backbone).preprocess)
    if cfg.teacher:
        _distil(cfg, run, records, split)
    sources = data_sources(cfg.data, cfg.format) if is_multi(cfg.data) else []
    dm = _data_module(cfg, records, split, contract, sources)
    module = _model(cfg, dm, contract, sources)
    if cfg.initial_checkpoint and not resume:  # a resumed run's own checkpoint replaces these weights anyway
        load_initial_weights(module.model, cfg.initial_checkpoint, cfg.backbone)
    ckpt_dir = run / "checkpoints"
    if primary and ckpt_dir.is_dir():
        for stale in ckpt_dir.glob(".*.tmp"):  # a write cut short by a kill; the checkpoint it targeted is intact
            stale.unlink(missing_ok=True)
    callbacks = _callbacks(cfg, run)
    trainer = _trainer(cfg, run, callbacks)
    t0 = time.time()
    with warnings.catch_warnings():
        quiet_lightning()
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_dir / "last.ckpt") if resume else None, weights_only=True)
    if trainer.is_global_zero:
        _write_summary(run, cfg, trainer, cast(ModelCheckpoint, callbacks[0]), dm, time.time() - t0, resume)


def _distil(cfg: TrainConfig, run: Path, records, split) -> None:
    from affectkit.training.teacher import TEACHER_FILE, mix_teacher

    assert cfg.teacher is not None
    samples = records.samples if hasattr(records, "samples") else records
    t0 = time.time()
    n = mix_teacher(
        samples, split["train"], cfg.teacher, cfg.teacher_weight, cache=run / TEACHER_FILE, decoded_store=cfg.cache
    )
    if is_primary_process():
        took = time.time() - t0
        named = " + ".join(teachers(cfg.teacher))
        print(f"teacher {named}: {n} training targets mixed at weight {cfg.teacher_weight} ({took:.0f} s)")


def _save_run_files(cfg: TrainConfig, run: Path, split) -> None:
    from affectkit.data.splits import save_split

    split_path = run / "split.json"
    if not split_path.is_file():
        save_split(split, split_path)  # atomic: ranks started by torchrun may read it at any moment
    save_config(cfg, run / "config.yaml")


def _data_module(cfg: TrainConfig, records, split, contract, sources):
    """The training data, checked to have a validation part."""
    from affectkit.data.module import AffectDataModule

    # weights are given for every dataset or for none (checked with the config)
    weights = {s.name: float(s.weight or 0.0) for s in sources} if sources and sources[0].weight is not None else None
    dm = AffectDataModule(
        records,
        split,
        image_size=contract,
        batch_size=cfg.batch_size,
        cache=cfg.cache,
        num_workers=cfg.num_workers,
        balanced_sampling=cfg.balanced_sampling,
        seed=cfg.seed,
        strict=cfg.strict,
        progress=cfg.progress,
        decode_device=cfg.decode_device,
        source_weights=weights,
    )
    dm.setup("fit")
    if "val" not in dm.datasets:
        raise ValueError("the split has no validation part: checkpoints are chosen on it (set val_size > 0)")
    return dm


def _model(cfg: TrainConfig, dm, contract, sources):
    """The model to train: class weights and trained heads from the training part."""
    from affectkit.data.sources import source_index
    from affectkit.training.losses import balanced_class_weights
    from affectkit.training.module import AffectModule

    class_weight = None
    if cfg.class_weights != "none":
        power = {"balanced": 1.0, "sqrt": 0.5}[cfg.class_weights]
        class_weight = balanced_class_weights(dm.class_counts("train"), power).tolist()
    module = AffectModule(
        cfg.to_dict(),
        class_weight=class_weight,
        preprocess=contract.to_dict(),
        heads=trained_heads(cfg, dm.datasets["train"]),
    )
    if sources:  # validation metrics per dataset too (val/<name>/accuracy, ...)
        names = [s.name for s in sources]
        module.val_sources = (names, source_index(dm.datasets["val"].samples, names))
    return module


def _callbacks(cfg: TrainConfig, run: Path) -> list[Callback]:
    """The best and last checkpoints (the best one first), the metrics files, weight averaging and early stopping
    if asked for."""
    ckpt_dir = run / "checkpoints"

    def last(**when) -> ModelCheckpoint:  # overwrites last.ckpt: no monitor, one file
        return ModelCheckpoint(
            dirpath=ckpt_dir, filename="last", save_top_k=1, monitor=None, enable_version_counter=False, **when
        )

    # last.ckpt has its own writer: `save_last` on the best checkpoint's writer only saves when a new best is saved,
    # so after an epoch without improvement last.ckpt would be the best epoch's, and --resume would redo epochs
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor=cfg.monitor,
            mode="max",
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
        EpochMetricsWriter(run),
        last(every_n_epochs=1),
    ]
    if cfg.ckpt_every_n_steps:
        callbacks.append(last(every_n_train_steps=cfg.ckpt_every_n_steps))
    if cfg.ema_decay:
        callbacks.append(EMAWeightAveraging(decay=cfg.ema_decay))
    if cfg.early_stopping:
        callbacks.append(EarlyStopping(monitor=cfg.monitor, mode="max", patience=cfg.early_stopping))
    return callbacks


def _trainer(cfg: TrainConfig, run: Path, callbacks: list[Callback]) -> L.Trainer:
    return L.Trainer(
        max_epochs=min(cfg.stop_after_epochs or cfg.epochs, cfg.epochs),
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        deterministic=cfg.deterministic,
        gradient_clip_val=cfg.grad_clip or None,
        callbacks=callbacks,
        logger=False,
        default_root_dir=run,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_train_batches=cfg.limit_train_batches,
        limit_val_batches=cfg.limit_val_batches,
        log_every_n_steps=10,
        plugins=[AtomicCheckpointIO()],
    )


def _write_summary(
    run: Path, cfg: TrainConfig, trainer: L.Trainer, ck: ModelCheckpoint, dm, wall_s: float, resume: bool
) -> None:
    """``train_summary.json``: the best checkpoint and how the run went (wall time summed over resumes)."""
    summary = {
        "best_checkpoint": str(ck.best_model_path),
        "best_score": float(ck.best_model_score) if ck.best_model_score is not None else None,
        "best_epoch": _best_epoch(run),
        "epochs_run": trainer.current_epoch,
        "wall_time_s": round(wall_s, 2),
        "precision": cfg.precision,
        "n_train": len(dm.datasets["train"]),
        "n_val": len(dm.datasets["val"]),
    }
    prev = run / "train_summary.json"
    if resume and prev.is_file():
        summary["wall_time_s"] += json.loads(prev.read_text()).get("wall_time_s", 0)
    atomic_write(prev, json.dumps(summary, indent=1))


def trained_heads(cfg: TrainConfig, train_set) -> dict[str, bool]:
    """A head is trained when its loss weight is above 0 and the training part has labels for it."""
    import numpy as np

    lab = train_set.labels
    has = {
        "expression": bool((lab["expression"] >= 0).any()),
        "valence": bool(np.isfinite(lab["valence"]).any()),
        "arousal": bool(np.isfinite(lab["arousal"]).any()),
    }
    return {k: has[k] and float(getattr(cfg, f"loss_{k}")) > 0 for k in has}


def _best_epoch(run: Path) -> int | None:
    p = run / "metrics.json"
    if not p.is_file():
        return None
    rows = [r for r in json.loads(p.read_text()) if r.get("val_score") is not None]
    return max(rows, key=lambda r: r["val_score"])["epoch"] if rows else None
