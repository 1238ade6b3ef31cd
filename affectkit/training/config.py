"""Training configuration: defaults from the classic study, YAML files, command-line overrides.

`TrainConfig` is a pydantic model, validated when it is built: every key's type, allowed values and range. Any
problem raises one `ConfigError` (a ValueError) naming the key, the value and what is allowed, before anything
is written to disk.

Strict types: integers must be integers (not ``"32"``, ``3.0`` or ``true``); numbers take integers or decimals
(not strings, booleans, NaN or infinity); booleans must be ``true``/``false`` (YAML's unquoted ``yes``/``no``
are booleans too; quoted ``"no"`` or ``"false"`` are strings and refused); text options take text only. YAML
files are read with YAML 1.2 number rules (``1e-4`` is a number, not a string) and duplicate keys are refused.

The error messages live in `config_errors`, YAML and ``--set`` parsing in `config_io`, the list form of ``data``
in `config_sources`; every public name stays importable from here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from affectkit.training.config_errors import ConfigError, _short, allowed, config_error
from affectkit.training.config_io import parse_set, parse_yaml, read_config_file, save_config
from affectkit.training.config_sources import FORMATS, SOURCE_KEYS, check_sources

# Lightning's precision values (lightning.fabric.connector._PRECISION_INPUT), plus "auto" (resolved in train()).
PRECISIONS = (
    "auto",
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
    "16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
    "32",
    "16",
    "bf16",
    "64",
    32,
    16,
    64,
)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
# mode="max" is fixed for checkpoint selection and early stopping: only higher-is-better epoch metrics.
MONITORS = ("val_score", "val_accuracy", "val_f1_macro", "val_valence_ccc", "val_arousal_ccc")
MIN_IMAGE_SIZE = 32  # every backbone downsamples 32x; VGG16 has no feature map left below this


Probability = Annotated[float, Field(ge=0, le=1)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
NonNegative = Annotated[float, Field(ge=0)]
Devices = (
    Literal["auto", -1]
    | Annotated[int, Field(ge=1)]
    | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    | Annotated[str, Field(pattern=r"^(-1|\d+|\d+(,\d+)*,?)$")]
)
BatchLimit = Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0, le=1)] | None


class TrainConfig(BaseModel):
    """Every training option with its default; `TrainConfig(**kw)` validates and raises `ConfigError`."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, validate_assignment=True)

    # data
    # one dataset folder, or a list: folders or {path, format, weight, name} (see affectkit.data.sources)
    data: str | list[Any] | None = Field(
        None,
        json_schema_extra={
            "allowed": "a dataset folder, or a list of them, each a folder or {path, format, weight, name}"
        },
    )
    format: Literal[FORMATS] | None = None  # type: ignore[valid-type]  # None: detected
    label_mode: Literal["majority", "distribution"] = "majority"  # FER+: hard labels or soft vote targets
    numeric_classes: bool = False  # image_folder: class folders named 0..7 are AffectNet ids
    ckplus_peak_frames: int = Field(3, ge=1)  # CK+: frames labelled at the end of each sequence
    split_by: Literal["auto", "group", "none"] = "auto"  # auto: whole subjects/clips/videos per part when known
    test_size: Fraction = 0.2  # classic 80/20 study design ...
    val_size: Fraction = 0.1  # ... with a validation part carved from train for model selection
    split_file: str | None = None  # reuse a saved split
    cache: bool = True  # decode once into a memory-mapped uint8 store
    decode_device: Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?)$")] | None = None  # "cuda": nvJPEG store
    strict: bool = False  # bad files become errors instead of skipped-with-warning
    # margin per side around detected faces at inference, matching crops (negative: tighter than MTCNN's box)
    face_margin: Annotated[float, Field(gt=-0.5, le=1)] = 0.2
    color: Literal["rgb", "gray"] = "rgb"  # gray models (FER+) see every face, colour photos too, as gray
    # the training faces' resolution: larger crops (photos) are first reduced to it (FER+: 48), see preprocess.py
    source_size: Annotated[int, Field(ge=8)] | None = None
    # model
    name: str | None = None
    backbone: str = "resnet50"  # a registered backbone or "timm:<name>"
    weights: Annotated[str, Field(min_length=1)] = "imagenet"  # imagenet | none | PATH
    # a trained affectkit model (run folder, .ckpt or shipped name) whose backbone and head start this run; the
    # optimiser, schedule and epochs start afresh (timm's --initial-checkpoint; unlike --resume)
    initial_checkpoint: str | None = None
    dropout: Fraction = 0.2
    num_classes: int = Field(
        8,
        ge=8,
        le=8,
        json_schema_extra={
            "allowed": "8 (the 8 AffectNet expressions are fixed in the metrics, evaluation and data module; "
            "other class counts are not supported)"
        },
    )
    # optimisation (classic study: 224 px RGB, batch 32, Adam, 25 epochs, CE + MSE)
    image_size: int = Field(224, ge=MIN_IMAGE_SIZE, le=4096)
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(25, ge=1)
    # end after this many epochs while the LR schedule still spans `epochs` (the first part of a longer schedule)
    stop_after_epochs: Annotated[int, Field(ge=1)] | None = None
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-4, gt=0)
    backbone_lr_mult: NonNegative = 1.0  # < 1: discriminative LRs (backbone learns slower than the new head)
    weight_decay: NonNegative | None = None  # None: 0.05 for adamw (decoupled), 0 for adam/sgd
    decay_norm_bias: bool = False  # true: weight decay on norm weights and biases too (the old way)
    schedule: Literal["none", "cosine", "step"] = "none"
    warmup_epochs: NonNegative = 0.0
    step_size: int = Field(10, ge=1)  # step schedule: epochs between decays
    step_gamma: float = Field(0.1, gt=0, le=1)
    freeze_epochs: int = Field(0, ge=0)  # head-only warm-up epochs (backbone frozen)
    freeze_stages: int = Field(0, ge=0)  # keep the first k backbone stages frozen throughout
    grad_clip: NonNegative = 0.0
    early_stopping: int = Field(0, ge=0)  # patience in epochs on the selection metric; 0 = off
    # > 0: validation, checkpoints and so every exported model use an exponential moving average of the weights,
    # updated after each optimiser step with this decay (0.999 averages over ~1,000 steps); 0 = off
    ema_decay: float = Field(0.0, ge=0, lt=1)
    # losses
    expression_loss: Literal["ce", "soft_ce"] = "ce"  # soft_ce: FER+ vote distribution
    # distillation: a model's probabilities mixed into the training targets (see affectkit.training.teacher)
    # a shipped model's name, an .onnx, a run folder or a .ckpt; a list: an ensemble, its probabilities averaged
    teacher: str | Annotated[list[str], Field(min_length=1)] | None = Field(
        None,
        json_schema_extra={
            "allowed": "a model (shipped name, .onnx, run folder or .ckpt), or a list of them (an averaged ensemble)"
        },
    )
    teacher_weight: Probability = 0.5  # the teacher's share of each training target
    # balanced: inverse frequency, normalised; sqrt: inverse square root of the frequency (a milder lift)
    class_weights: Literal["none", "balanced", "sqrt"] = "none"
    balanced_sampling: bool = False
    label_smoothing: Fraction = 0.0
    va_loss: Literal["mse", "ccc", "ccc+mse", "mse+ccc"] = "mse"
    loss_expression: NonNegative = 1.0
    loss_valence: NonNegative = 1.0
    loss_arousal: NonNegative = 1.0
    # augmentation (applied on the batch, after transfer to the device)
    aug_flip: bool = True
    aug_affine: float = Field(0.0, ge=0, le=2)  # strength: rotation +-15deg*s, scale +-10%*s, shift +-8%*s
    aug_color: Probability = 0.0  # brightness/contrast/saturation jitter amplitude
    aug_erasing: Probability = 0.0  # probability of one random erased rectangle per image
    aug_quality: Probability = 0.0  # probability of lower resolution / blur / JPEG / noise (photo-like faces)
    # selection
    monitor: Literal[MONITORS] = "val_score"  # type: ignore[valid-type]  # see affectkit.metrics.selection_score
    # engine
    precision: Literal[PRECISIONS] = "auto"  # type: ignore[valid-type]  # auto: bf16-mixed where supported, else 32
    channels_last: bool = True
    seed: int = Field(0, ge=0, le=2**32 - 1)
    deterministic: bool = False
    num_workers: int = Field(-1, ge=-1)  # -1: auto
    accelerator: Literal[ACCELERATORS] = "auto"  # type: ignore[valid-type]
    devices: Devices = Field(
        "auto",
        json_schema_extra={
            "allowed": "auto, -1 (all), a device count >= 1, a list of device ids, or ids as text such as '0,1'"
        },
    )
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"  # auto or a Lightning strategy name (ddp, fsdp, ...)
    limit_train_batches: BatchLimit = None  # int: batches per epoch; float: fraction of them
    limit_val_batches: BatchLimit = None
    ckpt_every_n_steps: int = Field(0, ge=0)  # also save last.ckpt mid-epoch every N steps (crash safety)
    progress: bool = True
    extra: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise config_error(err) from None

    def __setattr__(self, name: str, value: Any) -> None:  # validate_assignment: same error type
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise config_error(err) from None

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, v: str) -> str:
        if v.startswith("timm:"):
            import timm

            if not timm.is_model(v[len("timm:") :]):
                raise ValueError("unknown timm model")
            return v
        from affectkit.models import list_models

        if v not in list_models():
            raise ValueError("unknown backbone")
        return v

    @field_validator("data")
    @classmethod
    def _data_sources(cls, v: Any) -> Any:
        if isinstance(v, list):
            return check_sources(v)
        return v

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        if v != "auto" and v not in _strategies():
            raise ValueError("unknown strategy")
        return v

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def updated(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied; this config is left as it is."""
        return TrainConfig(**{**self.to_dict(), **changes})


FIELDS = TrainConfig.model_fields


@functools.cache
def _strategies() -> tuple[str, ...]:
    from lightning.pytorch.strategies import StrategyRegistry

    return tuple(StrategyRegistry.available_strategies())


# --------------------------------------------------------------------------------------------- error messages


def build_config(values: dict[str, Any], sources: dict[str, str] | None = None) -> TrainConfig:
    """A validated `TrainConfig` from ``values``; errors name ``sources[key]`` (e.g. the file) where known."""
    bad = [k for k in values if not isinstance(k, str)]
    if bad:
        raise ConfigError(
            f"config option names must be text, got {_short(bad[0])} (config): use option names such as epochs, lr"
        )
    try:
        return TrainConfig(**values)
    except ConfigError as err:
        if err.validation is None or not sources:
            raise
        raise config_error(err.validation, sources) from None


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults < YAML file < explicit overrides (None values are ignored). Invalid values -> `ConfigError`."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if path is not None:
        values.update(read_config_file(path))
        sources = {k: str(path) for k in values}
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    for k in given:
        sources.pop(k, None)
    return build_config(values, sources)


__all__ = [
    "ACCELERATORS",
    "FIELDS",
    "FORMATS",
    "MIN_IMAGE_SIZE",
    "MONITORS",
    "PRECISIONS",
    "SOURCE_KEYS",
    "ConfigError",
    "TrainConfig",
    "allowed",
    "build_config",
    "check_sources",
    "config_error",
    "load_config",
    "parse_set",
    "parse_yaml",
    "read_config_file",
    "save_config",
]
