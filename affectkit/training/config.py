"""Training configuration: defaults from the classic study, YAML files, command-line overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    # data
    data: str | None = None
    format: str | None = None
    label_mode: str = "majority"          # FER+: "majority" (hard) or "distribution" (soft vote targets)
    test_size: float = 0.2                # classic 80/20 study design ...
    val_size: float = 0.1                 # ... with a validation part carved from train for model selection
    split_file: str | None = None         # reuse a saved split
    cache: bool = True                    # decode once into a memory-mapped uint8 store
    decode_device: str | None = None      # "cuda": build that store with nvJPEG on the GPU (plain JPEGs)
    strict: bool = False                  # bad files become errors instead of skipped-with-warning
    face_margin: float = 0.2              # margin per side around detected faces at inference, matching crop framing
    color: str = "rgb"                    # rgb | gray: gray models (FER+) see every face, colour photos too, as gray
    # model
    name: str | None = None
    backbone: str = "resnet50"
    weights: str = "imagenet"             # imagenet | none | PATH
    dropout: float = 0.2
    num_classes: int = 8
    # optimisation (classic study: 224 px RGB, batch 32, Adam, 25 epochs, CE + MSE)
    image_size: int = 224
    batch_size: int = 32
    epochs: int = 25
    optimizer: str = "adam"               # adam | adamw | sgd
    lr: float = 1e-4
    backbone_lr_mult: float = 1.0         # < 1: discriminative LRs (backbone learns slower than the new head)
    weight_decay: float | None = None     # None: 0.05 for adamw (decoupled), 0 for adam/sgd
    schedule: str = "none"                # none | cosine | step
    warmup_epochs: float = 0.0
    step_size: int = 10                   # step schedule: epochs between decays
    step_gamma: float = 0.1
    freeze_epochs: int = 0                # head-only warm-up epochs (backbone frozen)
    freeze_stages: int = 0                # keep the first k backbone stages frozen throughout
    grad_clip: float = 0.0
    early_stopping: int = 0               # patience in epochs on the selection metric; 0 = off
    # losses
    expression_loss: str = "ce"           # ce | soft_ce (FER+ vote distribution)
    class_weights: str = "none"           # none | balanced (inverse frequency, normalised)
    balanced_sampling: bool = False
    label_smoothing: float = 0.0
    va_loss: str = "mse"                  # mse | ccc | ccc+mse
    loss_expression: float = 1.0
    loss_valence: float = 1.0
    loss_arousal: float = 1.0
    # augmentation (applied on the batch, after transfer to the device)
    aug_flip: bool = True
    aug_affine: float = 0.0               # strength: rotation +-15deg*s, scale +-10%*s, shift +-8%*s
    aug_color: float = 0.0                # brightness/contrast/saturation jitter amplitude
    aug_erasing: float = 0.0              # probability of one random erased rectangle per image
    # selection
    monitor: str = "val_score"            # see affectkit.metrics.selection_score
    # engine
    precision: str = "auto"               # auto: bf16-mixed where supported, else 32
    channels_last: bool = True
    seed: int = 0
    deterministic: bool = False
    num_workers: int = -1                 # -1: auto
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    ckpt_every_n_steps: int = 0           # also save last.ckpt mid-epoch every N steps (crash safety)
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults < YAML file < explicit overrides (None values are ignored). Unknown keys are errors."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{p}: a config must be a mapping of option: value")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown config option(s): {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")
    return TrainConfig(**values)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
