"""The validated training config: types, allowed values, ranges, YAML loading, --set parsing, and the property that
any input either builds a valid config or raises ConfigError."""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affectkit.training.config import (
    FIELDS,
    PRECISIONS,
    ConfigError,
    TrainConfig,
    build_config,
    load_config,
    parse_set,
    save_config,
)

# The options and defaults before the config was validated: the names are the API (YAML files, checkpoints).
OLD_DEFAULTS = {
    "data": None,
    "format": None,
    "label_mode": "majority",
    "numeric_classes": False,
    "ckplus_peak_frames": 3,
    "split_by": "auto",
    "test_size": 0.2,
    "val_size": 0.1,
    "split_file": None,
    "cache": True,
    "decode_device": None,
    "strict": False,
    "face_margin": 0.2,
    "color": "rgb",
    "source_size": None,
    "name": None,
    "backbone": "resnet50",
    "weights": "imagenet",
    "initial_checkpoint": None,
    "dropout": 0.2,
    "num_classes": 8,
    "image_size": 224,
    "batch_size": 32,
    "epochs": 25,
    "stop_after_epochs": None,
    "optimizer": "adam",
    "lr": 1e-4,
    "backbone_lr_mult": 1.0,
    "weight_decay": None,
    "decay_norm_bias": False,
    "schedule": "none",
    "warmup_epochs": 0.0,
    "step_size": 10,
    "step_gamma": 0.1,
    "freeze_epochs": 0,
    "freeze_stages": 0,
    "grad_clip": 0.0,
    "early_stopping": 0,
    "ema_decay": 0.0,
    "expression_loss": "ce",
    "teacher": None,
    "teacher_weight": 0.5,
    "class_weights": "none",
    "balanced_sampling": False,
    "label_smoothing": 0.0,
    "va_loss": "mse",
    "loss_expression": 1.0,
    "loss_valence": 1.0,
    "loss_arousal": 1.0,
    "aug_flip": True,
    "aug_affine": 0.0,
    "aug_color": 0.0,
    "aug_erasing": 0.0,
    "aug_quality": 0.0,
    "monitor": "val_score",
    "precision": "auto",
    "channels_last": True,
    "seed": 0,
    "deterministic": False,
    "num_workers": -1,
    "accelerator": "auto",
    "devices": "auto",
    "num_nodes": 1,
    "strategy": "auto",
    "limit_train_batches": None,
    "limit_val_batches": None,
    "ckpt_every_n_steps": 0,
    "progress": True,
    "extra": {},
}


def test_defaults_and_field_names_unchanged():
    assert TrainConfig().to_dict() == OLD_DEFAULTS
    assert list(FIELDS) == list(OLD_DEFAULTS)


def test_round_trips_through_dict_and_yaml(tmp_path):
    cfg = TrainConfig(
        backbone="resnet18",
        epochs=3,
        lr=0.01,
        devices=[0, 1],
        limit_train_batches=0.5,
        weight_decay=0.0,
        extra={"note": "x"},
    )
    assert TrainConfig(**cfg.to_dict()) == cfg
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_shipped_configs_are_valid():
    for path in sorted((Path(__file__).parents[1] / "affectkit" / "configs").glob("*.yaml")):
        load_config(path)


def test_precisions_are_lightnings():
    from lightning.fabric.connector import _PRECISION_INPUT

    lightning = {v for part in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(part)}
    assert set(PRECISIONS) == lightning | {"auto"}


def test_updated_validates_and_leaves_the_original():
    cfg = TrainConfig(label_mode="distribution")
    new = cfg.updated(expression_loss="soft_ce")
    assert new.expression_loss == "soft_ce" and cfg.expression_loss == "ce"
    with pytest.raises(ConfigError, match="expression_loss"):
        cfg.updated(expression_loss="soft-ce")


def test_assignment_is_validated():
    cfg = TrainConfig()
    with pytest.raises(ConfigError, match=r"epochs"):
        cfg.epochs = 0
    assert cfg.epochs == 25


def test_resolving_for_a_run_does_not_mutate_the_callers_config():
    from affectkit.training.run import resolve_config

    cfg = TrainConfig(label_mode="distribution", precision="auto")
    resolved = resolve_config(cfg)
    assert (cfg.expression_loss, cfg.precision) == ("ce", "auto")
    assert resolved.expression_loss == "soft_ce" and resolved.precision != "auto"


# ---------------------------------------------------------------------------------- the bad-input corpus


def _schema() -> dict:
    schema = TrainConfig.model_json_schema()
    defs = schema.get("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return {k: resolve(v) for k, v in schema["properties"].items()}


def _kinds(prop: dict) -> list[dict]:
    return [k for p in prop.get("anyOf", [prop]) for k in _kinds(p)] if "anyOf" in prop else [prop]


def _misspell(word: str) -> list[str]:
    out = {word.upper(), word + "x", word[:-1], word.replace("_", "-"), " " + word}
    return sorted(out - {word})


def bad_values(key: str, prop: dict) -> list:
    """Values the option must refuse, derived from its declared type, range and allowed values."""
    kinds = _kinds(prop)
    types = {k.get("type") for k in kinds}
    enums = [v for k in kinds for v in k.get("enum", [])]
    out: list = []
    if "null" not in types:
        out.append(None)
    if enums:
        for v in enums:
            if isinstance(v, str) and v not in ("auto",):
                out += [m for m in _misspell(v) if m not in enums]
    if "boolean" in types:
        out += ["no", "false", "true", "yes", 0, 1]
    if "integer" in types and "number" not in types:
        default = OLD_DEFAULTS[key]
        out += ["three", 3.5, True] + ([str(default)] if isinstance(default, int) else [])
        for k in kinds:
            if "minimum" in k:
                out.append(k["minimum"] - 1)
            if "maximum" in k:
                out.append(k["maximum"] + 1)
    if "number" in types:
        out += ["fast", "0.5", math.nan, math.inf, True]
        for k in kinds:
            if k.get("type") != "number":
                continue
            if "minimum" in k:
                out.append(k["minimum"] - 0.5)
            if "exclusiveMinimum" in k:
                out.append(float(k["exclusiveMinimum"]))
            if "maximum" in k:
                out.append(k["maximum"] + 0.5)
            if "exclusiveMaximum" in k:
                out.append(float(k["exclusiveMaximum"]))
    if types == {"string"} or types == {"string", "null"}:
        out += [3, 2.5, ["x"]]
    out += [""] * any(k.get("minLength") or "pattern" in k for k in kinds)
    out += ["bogus"] * any("pattern" in k for k in kinds)
    if "object" in types:
        out += ["x", [1]]
    if not out:  # e.g. devices, precision: wrong kinds of value
        out += [{"a": 1}]
    return out


def _corpus() -> list[tuple[str, object]]:
    cases = [(key, v) for key, prop in _schema().items() for v in bad_values(key, prop)]
    # the cases, verbatim
    cases += [
        ("epochs", -1),
        ("epochs", -5),
        ("epochs", 0),
        ("image_size", 0),
        ("lr", "fast"),
        ("epochs", "three"),
        ("image_size", "32"),
        ("aug_flip", "no"),
        ("cache", "false"),
        ("schedule", "cosin"),
        ("class_weights", "balaced"),
        ("expression_loss", "soft-ce"),
        ("num_classes", 7),
        ("num_classes", 10),
        ("backbone", "resnet5"),
        ("backbone", "timm:not_a_model"),
        ("strategy", "dpp"),
        ("devices", 0),
        ("precision", "bf17-mixed"),
        ("test_size", 1.0),
        ("seed", -1),
        ("batch_size", 0),
        ("lr", 0),
    ]
    seen, out = set(), []
    for key, value in cases:
        if (key, repr(value)) not in seen:
            seen.add((key, repr(value)))
            out.append((key, value))
    return out


CORPUS = _corpus()


def test_corpus_covers_every_option():
    assert {k for k, _ in CORPUS} == set(FIELDS)
    assert len(CORPUS) > 200


@pytest.mark.parametrize(("key", "value"), CORPUS, ids=[f"{k}={v!r}"[:60] for k, v in CORPUS])
def test_bad_value_is_refused_naming_key_value_and_what_is_allowed(key, value):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{key: value})
    msg = str(err.value)
    assert "\n" not in msg
    assert f"({key})" in msg and " use " in msg
    assert repr(value)[:20] in msg or (isinstance(value, float) and str(value) in msg)


@pytest.mark.parametrize(("key", "value"), CORPUS[::7], ids=[f"{k}={v!r}"[:60] for k, v in CORPUS[::7]])
def test_bad_value_in_a_yaml_file_names_the_file(tmp_path, key, value):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({key: value}))
    with pytest.raises(ConfigError, match=rf"\({key} in {p}\)"):
        load_config(p)


def test_num_classes_other_than_8_explains_why():
    with pytest.raises(ConfigError, match="8 AffectNet expressions are fixed"):
        TrainConfig(num_classes=7)


def test_misspelled_values_get_a_suggestion():
    for key, value, right in [
        ("schedule", "cosin", "cosine"),
        ("class_weights", "balaced", "balanced"),
        ("expression_loss", "soft-ce", "soft_ce"),
        ("backbone", "resnet5", "resnet50"),
    ]:
        with pytest.raises(ConfigError, match=f"did you mean {right}"):
            TrainConfig(**{key: value})


def test_all_problems_in_one_error():
    with pytest.raises(ConfigError) as err:
        TrainConfig(epochs=0, lr="fast", schedule="cosin")
    assert all(k in str(err.value) for k in ("(epochs)", "(lr)", "(schedule)"))


def test_unknown_option_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config option 'epoch'.*did you mean epochs"):
        load_config(None, epoch=3)
    with pytest.raises(ConfigError, match=r"unknown config option 'zzz'.*known options: data, format"):
        TrainConfig(zzz=1)


def test_overrides_beat_the_file_and_none_is_ignored(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 0\nlr: 0.01\n")
    cfg = load_config(p, epochs=5, lr=None)
    assert cfg.epochs == 5 and cfg.lr == 0.01
    with pytest.raises(ConfigError, match=r"\(epochs\)"):  # the bad value came from the command line
        load_config(p, epochs=-1)


def test_yaml_numbers_and_booleans(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 1e-4\nweight_decay: 5E-2\naug_flip: no\ncache: false\nimage_size: 64\n")
    cfg = load_config(p)
    assert cfg.lr == 1e-4 and cfg.weight_decay == 0.05 and cfg.aug_flip is False and cfg.cache is False
    p.write_text('aug_flip: "no"\n')
    with pytest.raises(ConfigError, match=r"invalid value 'no'.*aug_flip.*true or false"):
        load_config(p)


MALFORMED_YAML = {
    "unclosed_list": ("epochs: 3\nlr: [0.1\n", 3),
    "mapping_in_value": ("epochs: 3\nname: a: b\n", 2),
    "tab_indent": ("epochs: 3\n\tlr: 0.1\n", 2),
    "bad_indent": ("epochs: 3\n  lr: 0.1\n", 2),
    "unclosed_quote": ('epochs: 3\nname: "abc\n', 3),
    "duplicate_key": ("epochs: 3\nlr: 0.1\nepochs: 4\n", 3),
    "python_tag": ("epochs: !!python/object:os.system ls\n", 1),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_YAML))
def test_malformed_yaml_names_file_and_line(tmp_path, case):
    text, line = MALFORMED_YAML[case]
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert "\n" not in msg and str(p) in msg and f"line {line}" in msg, msg


@pytest.mark.parametrize("text", ["- epochs\n- 3\n", "just text\n", "3\n", "1: 2\n"])
def test_yaml_that_is_not_an_option_mapping(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=str(p)):
        load_config(p)


def test_empty_yaml_is_the_defaults_and_missing_file_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("# nothing\n")
    assert load_config(p) == TrainConfig()
    with pytest.raises(FileNotFoundError, match=r"nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00epochs")
    with pytest.raises(ConfigError, match=r"bin.yaml"):
        load_config(tmp_path / "bin.yaml")


def test_parse_set():
    assert parse_set(["lr=1e-3", "va-loss=ccc", "weight_decay=null", "name=a=b"]) == {
        "lr": 1e-3,
        "va_loss": "ccc",
        "weight_decay": None,
        "name": "a=b",
    }
    for bad in ["bogus_key", "=3", " =3", "lr=[0.1"]:
        with pytest.raises(ConfigError, match="--set"):
            parse_set([bad])


# ------------------------------------------------------------------------------ property-based: never a crash

_FIELD_VALUES: dict[str, list] = {}
for _key, _prop in _schema().items():
    good = [OLD_DEFAULTS[_key]] + [v for k in _kinds(_prop) for v in k.get("enum", [])]
    for k in _kinds(_prop):
        good += [k[b] for b in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if b in k]
    _FIELD_VALUES[_key] = good + bad_values(_key, _prop)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.binary(max_size=4)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
keys = st.sampled_from(sorted(FIELDS)) | st.text(max_size=10)


@st.composite
def config_dicts(draw):
    out = {}
    for key in draw(st.lists(keys, max_size=8, unique=True)):
        known = _FIELD_VALUES.get(key)
        out[key] = draw(st.sampled_from(known) if known and draw(st.booleans()) else values)
    return out


def _check(build, d):
    try:
        cfg = build(d)
    except ConfigError as e:
        msg = str(e)
        assert msg and "\n" not in msg
        return
    assert isinstance(cfg, TrainConfig)
    assert TrainConfig(**cfg.to_dict()) == cfg  # a valid config stays valid through its saved form


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_dicts())
def test_any_dict_builds_a_config_or_raises_config_error(d):
    _check(lambda x: TrainConfig(**x), d)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.none() | st.integers() | st.text(max_size=6) | st.booleans(), values, max_size=4))
def test_any_mapping_with_any_keys_builds_or_raises_config_error(d):
    _check(build_config, d)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60) | config_dicts().map(lambda d: "\n".join(f"{k}: {v!r}" for k, v in d.items())))
def test_any_yaml_text_builds_or_raises_config_error(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("yaml") / "c.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(lambda _: load_config(p), None)
