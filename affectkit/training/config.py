"""Training configuration: defaults from the classic study, YAML files, command-line overrides.

`TrainConfig` is a pydantic model, validated when it is built: every key's type, allowed values and range. Any
problem raises one `ConfigError` (a ValueError) naming the key, the value and what is allowed, before anything
is written to disk.

Strict types: integers must be integers (not ``"32"``, ``3.0`` or ``true``); numbers take integers or decimals
(not strings, booleans, NaN or infinity); booleans must be ``true``/``false`` (YAML's unquoted ``yes``/``no``
are booleans too; quoted ``"no"`` or ``"false"`` are strings and refused); text options take text only. YAML
files are read with YAML 1.2 number rules (``1e-4`` is a number, not a string) and duplicate keys are refused.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
# Dataset layouts (affectkit.data.formats.FORMATS; listed here so validating a config imports no reader).
FORMATS = (
    "ferplus",
    "affectnet_csv",
    "affectnet_npy",
    "fer2013_csv",
    "rafdb",
    "expw",
    "affwild2",
    "ckplus",
    "afew_va",
    "jaffe",
    "manifest",
    "image_folder",
)
MIN_IMAGE_SIZE = 32  # every backbone downsamples 32x; VGG16 has no feature map left below this


class ConfigError(ValueError):
    """An invalid configuration: one line naming the key(s), the value(s) and what is allowed."""

    validation: ValidationError | None = None  # pydantic's details, when it found the problem


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
    # model
    name: str | None = None
    backbone: str = "resnet50"  # a registered backbone or "timm:<name>"
    weights: Annotated[str, Field(min_length=1)] = "imagenet"  # imagenet | none | PATH
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
    # losses
    expression_loss: Literal["ce", "soft_ce"] = "ce"  # soft_ce: FER+ vote distribution
    class_weights: Literal["none", "balanced"] = "none"  # balanced: inverse frequency, normalised
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
SOURCE_KEYS = ("path", "format", "weight", "name")


def check_sources(items: list[Any]) -> list[Any]:
    """The list form of ``data``, each item checked (a ValueError names the item and the fix); mappings come
    back with every key of `SOURCE_KEYS`."""
    if not items:
        raise ValueError("an empty list names no dataset: give at least one folder")
    out: list[Any] = []
    for i, item in enumerate(items):
        where = f"data[{i}]"
        if isinstance(item, str) and item:
            out.append(item)
            continue
        if not isinstance(item, dict):
            raise ValueError(f"{where} is {_short(item)}: use a folder or a mapping {{path, format, weight, name}}")
        unknown = [k for k in item if k not in SOURCE_KEYS]
        if unknown:
            raise ValueError(f"{where} has unknown key {_short(unknown[0])}: use {', '.join(SOURCE_KEYS)}")
        path, fmt, weight, name = (item.get(k) for k in SOURCE_KEYS)
        if not isinstance(path, str) or not path:
            raise ValueError(f"{where} needs path: the dataset folder")
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(
                f"{where}.format {_short(fmt)} is unknown: use one of {', '.join(FORMATS)}"
                f"{_suggest(fmt, list(FORMATS))}"
            )
        if weight is not None and (
            isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0
        ):
            raise ValueError(f"{where}.weight {_short(weight)} is not a number > 0: give its share of the draws")
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name)):
            raise ValueError(f"{where}.name {_short(name)}: use letters, digits, '_', '.' or '-'")
        out.append({"path": path, "format": fmt, "weight": None if weight is None else float(weight), "name": name})
    weighted = [isinstance(x, dict) and x["weight"] is not None for x in out]
    if any(weighted) and not all(weighted):
        raise ValueError("weight is given for some datasets only: give every dataset a weight, or none")
    return out


@functools.cache
def _strategies() -> tuple[str, ...]:
    from lightning.pytorch.strategies import StrategyRegistry

    return tuple(StrategyRegistry.available_strategies())


# --------------------------------------------------------------------------------------------- error messages


@functools.cache
def _field_schemas() -> dict[str, dict]:
    schema = TrainConfig.model_json_schema()
    return {k: _resolve_refs(v, schema.get("$defs", {})) for k, v in schema["properties"].items()}


def _resolve_refs(node: Any, defs: dict) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolve_refs(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _resolve_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v, defs) for v in node]
    return node


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "null": "null",
    "object": "a mapping",
    "array": "a list",
}
_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


def _describe(schema: dict) -> str:
    """What a field's JSON schema allows, in words."""
    if "allowed" in schema:
        return schema["allowed"]
    if "anyOf" in schema:
        return " or ".join(_describe(s) for s in schema["anyOf"])
    if "enum" in schema or "const" in schema:
        values = dict.fromkeys(str(v) for v in schema.get("enum", [schema.get("const")]))  # 32 and "32": once
        return "one of " + ", ".join(values)
    text = _TYPE_WORDS.get(schema.get("type", ""), "a value")
    if schema.get("type") == "array" and "items" in schema:
        text += " of " + _describe(schema["items"]).replace("an integer", "integers")
    bounds = [f"{op} {schema[k]}" for k, op in _BOUNDS if k in schema]
    if "pattern" in schema:
        bounds.append(f"matching {schema['pattern']}")
    return f"{text} {' and '.join(bounds)}" if bounds else text


def allowed(key: str) -> str:
    """What option ``key`` accepts, in words (for error messages and help)."""
    if key == "backbone":
        from affectkit.models import list_models

        return "one of " + ", ".join(list_models()) + ", or timm:<a timm model name>"
    if key == "strategy":
        return "auto or one of " + ", ".join(_strategies())
    return _describe(_field_schemas()[key])


def _choices(key: str) -> list[str]:
    """The named values option ``key`` takes (for "did you mean" hints)."""
    if key == "backbone":
        from affectkit.models import list_models

        return list_models()
    if key == "strategy":
        return ["auto", *_strategies()]

    def values(schema: dict) -> list[str]:
        out = [str(v) for v in schema.get("enum", [])]
        return out + [v for s in schema.get("anyOf", []) for v in values(s)]

    return values(_field_schemas()[key])


def _suggest(value: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6) if isinstance(value, str) else []
    return f" (did you mean {close[0]}?)" if close else ""


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_error(err: ValidationError, sources: dict[str, str] | None = None) -> ConfigError:
    """One `ConfigError` for all problems pydantic found; ``sources`` says where a key was set (a file)."""
    parts: list[str] = []
    seen: set[str] = set()
    for e in err.errors():
        key = str(e["loc"][0]) if e["loc"] else "?"
        if key in seen:  # a union reports one error per member: describe the field once
            continue
        seen.add(key)
        name = key if key.isidentifier() else _short(key)
        where = f"{name} in {sources[key]}" if sources and key in sources else name
        if e["type"] == "extra_forbidden":
            fix = _suggest(key, list(FIELDS)) or f"; known options: {', '.join(FIELDS)}"
            parts.append(f"unknown config option {key!r} ({where}): remove or rename it{fix}")
            continue
        value = e.get("input")
        if key == "data" and e["type"] == "value_error":  # check_sources says what is wrong and where
            parts.append(f"invalid data ({where}): {e['ctx']['error']}")
            continue
        options = allowed(key)
        hint = _suggest(value, _choices(key))
        parts.append(f"invalid value {_short(value)} ({where}): use {options}{hint}")
    error = ConfigError("; ".join(parts))
    error.validation = err
    return error


# ----------------------------------------------------------------------------------------------- YAML files


class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats (``1e-4`` is a number) and duplicate keys refused."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
            )
        if isinstance(key, (str, int, float, bool)):
            seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """YAML ``text`` parsed with the config rules; a syntax error is a `ConfigError` naming ``source`` and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # safe: _Loader is a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(
            f"malformed YAML: {problem} ({at}): fix the YAML there (values holding ': ' or ' #' need quotes)"
        ) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The option: value mapping of a YAML config file (not validated yet)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found ({p}): check the --config path")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file is not UTF-8 text ({p}): pass a YAML file") from None
    loaded = parse_yaml(text, str(p))
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"a config must be a mapping of option: value, got {type(loaded).__name__} ({p}): "
            f"write one 'option: value' per line"
        )
    bad = [k for k in loaded if not isinstance(k, str)]
    if bad:
        raise ConfigError(
            f"config option names must be text, got {_short(bad[0])} ({p}): use option names such as epochs, lr"
        )
    return loaded


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


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``--set key=value`` items (values in YAML) as a dict; an item without ``=`` or a key is a `ConfigError`."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r} (--set {item}): write e.g. --set va_loss=ccc")
        out[key] = parse_yaml(value, f"--set {item}")
    return out


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    from affectkit.io import atomic_write

    atomic_write(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
