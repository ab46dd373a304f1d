"""The operator catalogue.

Built-in operators register here with `@register`; third-party packages add theirs through
the entry-point group `datamate.operators` (each entry point names an `Operator` subclass),
as node types do with `datamate.node_types` (`nodes/registry.py`). The API serves
`describe()`, so the designer lists operators and builds their config forms from it.
"""

from __future__ import annotations

from importlib.metadata import entry_points
import logging
from typing import Any

from jsonschema import Draft202012Validator

from nodes.operators.base import KINDS, Operator

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "datamate.operators"
BUILTIN_MODULES = ("text", "pii", "filters", "dedup", "fields")


class UnknownOperator(KeyError):
    pass


_registry: dict[str, type[Operator]] = {}
_loaded = False


def register(operator: type[Operator]) -> type[Operator]:
    """Class decorator: add an operator to the catalogue (its schema is checked here, once)."""
    if operator.kind not in KINDS:
        raise ValueError(f"{operator.__name__}: kind must be one of {KINDS}")
    Draft202012Validator.check_schema(operator.config_schema)
    existing = _registry.get(operator.name)
    if existing is not None and existing is not operator:
        raise ValueError(f"operator {operator.name!r} is registered twice ({existing.__name__}, {operator.__name__})")
    _registry[operator.name] = operator
    return operator


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib import import_module

    for module in BUILTIN_MODULES:
        import_module(f"nodes.operators.{module}")
    load_entry_points()


def load_entry_points() -> None:
    """Register the operators that installed packages declare in `datamate.operators`."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(entry_point.load())
        except Exception:
            # A broken plug-in must not take the product down; it is left out and logged.
            logger.exception("could not load operator plug-in %s", entry_point.name)


def get(name: str) -> type[Operator]:
    _load()
    try:
        return _registry[name]
    except KeyError:
        raise UnknownOperator(name) from None


def all_operators() -> list[type[Operator]]:
    _load()
    return sorted(_registry.values(), key=lambda op: (KINDS.index(op.kind), op.name))


def describe() -> list[dict[str, Any]]:
    return [operator.describe() for operator in all_operators()]
