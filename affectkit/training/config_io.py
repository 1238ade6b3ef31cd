"""Config files and ``--set`` items: YAML read with the config's rules, and the resolved config saved."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from affectkit.training.config_errors import ConfigError, _short

if TYPE_CHECKING:
    from affectkit.training.config import TrainConfig


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
