"""The one sandbox for templated config values and condition expressions.

Both go through Jinja2's `SandboxedEnvironment`: no `eval`, no access to Python internals.
This module parses them for validation; the engine evaluates them with the same environment.
"""

from __future__ import annotations

from dataclasses import dataclass
import re

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

ENVIRONMENT = SandboxedEnvironment(autoescape=False)

_TEMPLATE_MARK = re.compile(r"\{\{|\{%")
_WHOLE_TEMPLATE = re.compile(r"^\s*\{\{.*\}\}\s*$", re.DOTALL)


def has_template(value: object) -> bool:
    return isinstance(value, str) and bool(_TEMPLATE_MARK.search(value))


def is_whole_template(value: object) -> bool:
    """A value that is only a `{{ ... }}`: its type is known once the run resolves it."""
    return isinstance(value, str) and bool(_WHOLE_TEMPLATE.match(value))


@dataclass(frozen=True)
class References:
    params: frozenset[str]
    nodes: frozenset[str]


class ExpressionError(ValueError):
    pass


def _parse(source: str) -> nodes.Template:
    try:
        return ENVIRONMENT.parse(source)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.message}") from None


def _references(tree: nodes.Template) -> References:
    """Names used as `params.x` / `params['x']` and `nodes.k` / `nodes['k']`."""
    found: dict[str, set[str]] = {"params": set(), "nodes": set()}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in found):
            continue
        if isinstance(node, nodes.Getattr):
            found[target.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[target.name].add(node.arg.value)
    return References(frozenset(found["params"]), frozenset(found["nodes"]))


def template_references(source: str) -> References:
    """Parse a templated string (`... {{ params.x }} ...`); raise ExpressionError if invalid."""
    return _references(_parse(source))


def expression_references(source: str) -> References:
    """Parse a bare expression (`params.x > 3`); raise ExpressionError if invalid."""
    if "{{" in source or "{%" in source:
        raise ExpressionError("write the expression without {{ }}")
    return _references(_parse("{{ (" + source + ") }}"))
