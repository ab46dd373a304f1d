"""JSON Schema helpers shared by node types, operators and the graph validator: the
defaults a schema declares, and a violation turned into (field path, message)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError


def defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The `default` of each top-level property that declares one."""
    return {name: prop["default"] for name, prop in schema.get("properties", {}).items() if "default" in prop}


def format_path(prefix: str, path: Iterable[Any]) -> str:
    """`nodes[2].config.min_length` from a prefix and a path of keys and indexes."""
    text = prefix
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def locate(error: SchemaError, prefix: str) -> str:
    """The field a violation is about: for a missing or unknown property, that property."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        path.append(next(name for name in error.validator_value if name not in error.instance))
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(name for name in error.instance if name not in known)
        if extra:
            path.append(extra[0])
    return format_path(prefix, path)


def message(error: SchemaError) -> str:
    """What is wrong, in words that read after the field's name."""
    if error.validator == "required":
        return "is required"
    if error.validator == "additionalProperties":
        return "is not a known field"
    if error.validator == "maxItems":
        return f"too many items (at most {error.validator_value})"
    if error.validator == "anyOf" and error.context:
        return " or ".join(sorted({sub.message for sub in error.context}))
    return error.message
