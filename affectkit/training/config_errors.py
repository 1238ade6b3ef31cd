"""Config errors: one `ConfigError` line per problem, naming the key, the value, what is allowed and a likely fix."""

from __future__ import annotations

import difflib
import functools
from typing import Any

from pydantic import ValidationError


class ConfigError(ValueError):
    """An invalid configuration: one line naming the key(s), the value(s) and what is allowed."""

    validation: ValidationError | None = None  # pydantic's details, when it found the problem


@functools.cache
def _field_schemas() -> dict[str, dict]:
    from affectkit.training.config import TrainConfig  # called on errors only, once the config module is loaded

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
    from affectkit.training.config import _strategies

    if key == "backbone":
        from affectkit.models import list_models

        return "one of " + ", ".join(list_models()) + ", or timm:<a timm model name>"
    if key == "strategy":
        return "auto or one of " + ", ".join(_strategies())
    return _describe(_field_schemas()[key])


def _choices(key: str) -> list[str]:
    """The named values option ``key`` takes (for "did you mean" hints)."""
    from affectkit.training.config import _strategies

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
    from affectkit.training.config import FIELDS

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
