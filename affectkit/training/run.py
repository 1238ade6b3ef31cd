"""Run folders, config resolution, callbacks, and `train()`: the function behind `affectkit train`."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from affectkit.io import atomic_torch_save, atomic_write
from affectkit.training.checkpoint import check_resumable
from affectkit.training.config import ConfigError, TrainConfig, save_config
from affectkit.training.module import EpochEndCallback

# Set by the primary process so the ranks Lightning launches later find the same run folder.
RUN_DIR_ENV = "AFFECTKIT_RUN_DIR"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes atomically in the checkpoint's own folder and always loads with
    ``weights_only=True`` (a crafted pickle cannot run code on ``--resume``).

    Lightning's default goes through an fsspec transaction whose temporary file lives in the system temp folder;
    when that is another filesystem the commit is a copy onto the destination, so a kill during it truncates
    ``last.ckpt``. Here the temporary file sits next to the target and is renamed over it.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only: bool | None = None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # refused unpickling (crafted file) or a corrupt one
            first = str(e).splitlines()[0] if str(e) else ""
            raise ValueError(
                f"{path}: not a loadable checkpoint with weights_only=True ({type(e).__name__}: {first})"
            ) from e


def is_primary_process() -> bool:
    """True unless the environment names this process a non-zero rank (Lightning's launched ranks, torchrun,
    SLURM, a manually started node with NODE_RANK > 0)."""
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        v = os.environ.get(var)
        if v not in (None, "", "0"):
            return False
    return True


EPOCH_COLUMNS = [
    "epoch",
    "train_loss",
    "train_loss_expression",
    "train_loss_valence",
    "train_loss_arousal",
    "train_accuracy",
    "train_f1_macro",
    "train_valence_rmse",
    "train_valence_ccc",
    "train_arousal_rmse",
    "train_arousal_ccc",
    "val_loss",
    "val_loss_expression",
    "val_loss_valence",
    "val_loss_arousal",
    "val_accuracy",
    "val_f1_macro",
    "val_valence_rmse",
    "val_valence_ccc",
    "val_arousal_rmse",
    "val_arousal_ccc",
    "val_score",
    "lr",
    "time_s",
]


class EpochMetricsWriter(EpochEndCallback):
    """Appends one row per epoch to ``metrics.csv`` and ``metrics.json`` in the run folder."""

    def __init__(self, run_dir: Path):
        self.csv = Path(run_dir) / "metrics.csv"
        self.json = Path(run_dir) / "metrics.json"
        self.rows: list[dict[str, Any]] = []
        self._t0 = time.time()

    def on_train_start(self, trainer, pl_module):
        # On resume, rows of epochs after the checkpoint are dropped: they will be run again. (Not in on_fit_start:
        # Lightning restores the loops, hence current_epoch, only after that hook.)
        if self.json.is_file():
            rows = json.loads(self.json.read_text())
            self.rows = [r for r in rows if r["epoch"] < trainer.current_epoch]
        self._t0 = time.time()

    def on_train_epoch_start(self, trainer, pl_module):
        self._t0 = time.time()

    def write_epoch(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        cm = trainer.callback_metrics
        row: dict[str, Any] = {"epoch": trainer.current_epoch}
        for k in EPOCH_COLUMNS[1:] + sorted(k for k in cm if k.startswith("val/")):  # val/<dataset>/...
            if k in cm:
                row[k] = float(cm[k])
        opt = trainer.optimizers[0] if trainer.optimizers else None
        if opt is not None:
            row["lr"] = float(opt.param_groups[-1]["lr"])
        row["time_s"] = round(time.time() - self._t0, 3)
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        atomic_write(self.json, json.dumps(self.rows, indent=1, allow_nan=True))
        columns = EPOCH_COLUMNS + sorted({k for r in self.rows for k in r if k.startswith("val/")})
        lines = [",".join(columns)]
        for r in self.rows:
            lines.append(",".join("" if r.get(c) is None else _fmt(r[c]) for c in columns))
        atomic_write(self.csv, "\n".join(lines) + "\n")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def free_folder(base: Path) -> Path:
    """``base`` if it is absent or empty, else the first free ``base-2``, ``base-3``, ..."""
    run, i = base, 1
    while run.exists() and any(run.iterdir()):
        i += 1
        run = base.with_name(f"{base.name}-{i}")
    return run


def new_run_dir(out: str | Path | None, cfg: TrainConfig, resume: bool, create: bool = True) -> Path:
    """The run folder: never overwritten silently. A taken ``--out`` is refused unless resuming.

    Only the primary process decides and checks; other ranks of a distributed run take the folder it chose
    (``--out``, or the one it exported in ``$AFFECTKIT_RUN_DIR`` before launching them). ``create=False`` only
    decides and checks (`make_run_dir` creates it later).
    """
    if not is_primary_process():
        chosen = out if out is not None else os.environ.get(RUN_DIR_ENV)
        if chosen is None:
            raise ValueError("multi-process runs started by an external launcher (torchrun, srun) need --out RUN_DIR")
        return Path(chosen)
    if out is None and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise ValueError("multi-process runs started by an external launcher (torchrun, srun) need --out RUN_DIR")
    if out is None:
        run = free_folder(Path("runs") / (cfg.name or cfg.backbone.replace(":", "_").replace("/", "_")))
        if resume:
            raise ValueError("--resume needs --out RUN_DIR naming the run to continue")
    else:
        run = Path(out)
        _check_folder_path(run)
        if resume:
            if not (run / "checkpoints" / "last.ckpt").is_file():
                raise FileNotFoundError(f"{run}: nothing to resume (no checkpoints/last.ckpt)")
        elif run.exists() and any(run.iterdir()):
            raise FileExistsError(f"{run} already holds a run; choose another --out, or pass --resume to continue it")
    if create:
        run.mkdir(parents=True, exist_ok=True)
    return run


def _check_folder_path(run: Path) -> None:
    """A file where the run folder (or a folder above it) should be is a user error, not a traceback."""
    for p in (run, *run.parents):
        if p.exists():
            if not p.is_dir():
                what = "--out" if p == run else f"the folder {p} in --out"
                raise FileExistsError(
                    f"{what} names an existing file, not a folder ({p}): choose a new folder for the run"
                )
            return


def make_run_dir(run: Path) -> list[Path]:
    """Create the run folder; returns the folders created (deepest last), for `discard_unstarted_run`."""
    created = [p for p in (*reversed(run.parents), run) if not p.exists()]
    run.mkdir(parents=True, exist_ok=True)
    return created


# What train() itself writes in a run folder; removed again when a new run fails before its first checkpoint.
RUN_FILES = ("config.yaml", "split.json", "metrics.csv", "metrics.json", "train_summary.json")


def discard_unstarted_run(run: Path, created: list[Path]) -> None:
    """Undo a new run that failed before it saved a checkpoint, so the same ``--out`` can be used again.

    Only affectkit's own files go (and the folders this run created, if left empty); a run with a checkpoint
    is kept for ``--resume``.
    """
    ckpt = run / "checkpoints"
    if (ckpt / "last.ckpt").is_file() or (ckpt / "best.ckpt").is_file():
        return
    for name in RUN_FILES:
        (run / name).unlink(missing_ok=True)
    for folder in (run, ckpt):
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            tmp.unlink(missing_ok=True)
    for folder in (ckpt, *reversed(created)):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty


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
    if not cfg.data:
        raise ConfigError("no data given (data): pass --data PATH or set data: in the config")
    cfg = resolve_config(cfg)
    assert cfg.data is not None  # checked above; resolving keeps it
    run = new_run_dir(out, cfg, resume, create=False)
    primary = is_primary_process()
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
    if cfg.label_mode == "distribution" and cfg.expression_loss == "ce":
        changes["expression_loss"] = "soft_ce"
    if cfg.precision == "auto":
        changes["precision"] = default_precision(cfg.accelerator)
    return cfg.updated(**changes) if changes else cfg.model_copy(deep=True)  # never shares a list or dict


def _fit(cfg: TrainConfig, run: Path, records, split, resume: bool, primary: bool) -> None:
    """Everything of `train` after the run folder exists: split and config files, data, model, Lightning."""
    from affectkit.data.module import AffectDataModule
    from affectkit.data.sources import data_sources, is_multi, source_index
    from affectkit.data.splits import save_split
    from affectkit.models.registry import get_spec
    from affectkit.preprocess import Preprocess
    from affectkit.training.losses import balanced_class_weights
    from affectkit.training.module import AffectModule

    split_path = run / "split.json"
    if primary and not split_path.is_file():
        save_split(split, split_path)  # atomic: ranks started by torchrun may read it at any moment
    if primary:
        save_config(cfg, run / "config.yaml")

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # The preprocessing contract is fixed here, once, and travels with every checkpoint of the run.
    contract = Preprocess.from_config(cfg.to_dict(), get_spec(cfg.backbone).preprocess)
    sources = data_sources(cfg.data, cfg.format) if is_multi(cfg.data) else []
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
    class_weight = None
    if cfg.class_weights == "balanced":
        class_weight = balanced_class_weights(dm.class_counts("train")).tolist()
    module = AffectModule(
        cfg.to_dict(),
        class_weight=class_weight,
        preprocess=contract.to_dict(),
        heads=trained_heads(cfg, dm.datasets["train"]),
    )
    if sources:  # validation metrics per dataset too (val/<name>/accuracy, ...)
        names = [s.name for s in sources]
        module.val_sources = (names, source_index(dm.datasets["val"].samples, names))

    ckpt_dir = run / "checkpoints"
    if primary and ckpt_dir.is_dir():
        for stale in ckpt_dir.glob(".*.tmp"):  # a write cut short by a kill; the checkpoint it targeted is intact
            stale.unlink(missing_ok=True)
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor=cfg.monitor,
            mode="max",
            save_last=True,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
        EpochMetricsWriter(run),
    ]
    if cfg.ckpt_every_n_steps:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="last",
                every_n_train_steps=cfg.ckpt_every_n_steps,
                save_top_k=1,
                monitor=None,
                enable_version_counter=False,
            )
        )
    if cfg.early_stopping:
        callbacks.append(EarlyStopping(monitor=cfg.monitor, mode="max", patience=cfg.early_stopping))
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
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
    if resume:
        check_resumable(ckpt_dir / "last.ckpt", cfg.backbone, cfg.decay_norm_bias)
    t0 = time.time()
    with warnings.catch_warnings():
        quiet_lightning()
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_dir / "last.ckpt") if resume else None, weights_only=True)
    if trainer.is_global_zero:
        ck = cast(ModelCheckpoint, callbacks[0])
        summary = {
            "best_checkpoint": str(ck.best_model_path),
            "best_score": float(ck.best_model_score) if ck.best_model_score is not None else None,
            "best_epoch": _best_epoch(run),
            "epochs_run": trainer.current_epoch,
            "wall_time_s": round(time.time() - t0, 2),
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
