"""The operator catalogue.

Built-in operators register here with `@register`; third-party packages add theirs through
the entry-point group `datamate.operators` (each entry point names an `Operator` subclass),
as node types do with `datamate.node_types` (`nodes/registry.py`). The API serves
`describe()`, so the designer lists operators and builds their config forms from it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from nodes.catalogue import Catalogue
from nodes.operators.base import KINDS, Operator

ENTRY_POINT_GROUP = "datamate.operators"
BUILTIN_MODULES = ("text", "pii", "filters", "dedup", "fields")


class UnknownOperator(KeyError):
    pass


def _check(operator: type[Operator]) -> None:
    if operator.kind not in KINDS:
        raise ValueError(f"{operator.__name__}: kind must be one of {KINDS}")


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        import_module(f"nodes.operators.{module}")


_catalogue = Catalogue(
    noun="operator",
    group=ENTRY_POINT_GROUP,
    name_of=lambda operator: operator.name,
    check=_check,
    load_builtins=_load_builtins,
    unknown=UnknownOperator,
)
_registry = _catalogue.items
register = _catalogue.register
load_entry_points = _catalogue.load_entry_points


def get(name: str) -> type[Operator]:
    return _catalogue.get(name)


def all_operators() -> list[type[Operator]]:
    return _catalogue.all(lambda op: (KINDS.index(op.kind), op.name))


def describe() -> list[dict[str, Any]]:
    return [operator.describe() for operator in all_operators()]
