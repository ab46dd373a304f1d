"""Typed pipeline parameters: checking a value against its definition.

Used when a document is validated (defaults, enum choices) and when a run starts (values).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def value_error(definition: dict[str, Any], value: Any) -> str | None:
    """Why `value` does not fit the parameter `definition`, or None if it fits."""
    kind = definition["type"]
    if kind in ("string", "dataset"):
        if not isinstance(value, str) or (kind == "dataset" and not value.strip()):
            return "must be a dataset name" if kind == "dataset" else "must be a string"
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return "must be true or false"
    elif kind == "enum":
        choices = definition.get("choices") or []
        if value not in choices:
            return f"must be one of {', '.join(map(str, choices))}"
    elif kind == "datetime":
        if not isinstance(value, str):
            return "must be an ISO 8601 date-time string"
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "must be an ISO 8601 date-time, e.g. 2026-01-31T02:00:00+00:00"
    return None
