"""Lightning plug-ins of a training run: atomic checkpoint I/O and the per-epoch metrics files."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from affectkit.io import atomic_torch_save, atomic_write
from affectkit.training.module import EpochEndCallback


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
