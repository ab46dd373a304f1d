"""The one sandbox for templated config values and condition expressions.

Both go through Jinja2's `SandboxedEnvironment`: no `eval`, no access to Python internals.
This module parses them for validation; the engine evaluates them with the same environment.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import re
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment

ENVIRONMENT = SandboxedEnvironment(autoescape=False)

_TEMPLATE_MARK = re.compile(r"\{\{|\{%")
# One `{{ ... }}` and nothing else ("{{ a }}-{{ b }}" is text with two templates in it).
_WHOLE_TEMPLATE = re.compile(r"^\s*\{\{(?:(?!\}\}).)*\}\}\s*$", re.DOTALL)


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


# --- evaluation ---------------------------------------------------------------------


class BoundedSandbox(SandboxedEnvironment):
    """The sandbox, plus limits on `*` and `**` so `'a' * 10**10` cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})
    MAX_POWER = 1000
    MAX_SEQUENCE = 1_000_000

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > self.MAX_POWER:
            raise ExpressionError(f"exponent {right} is too large")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                sized = isinstance(sequence, (str, list, tuple)) and isinstance(count, int)
                if sized and len(sequence) * count > self.MAX_SEQUENCE:
                    raise ExpressionError("the result would be too large")
        return super().call_binop(context, operator, left, right)


EVALUATOR = BoundedSandbox(autoescape=False, undefined=StrictUndefined)


@functools.lru_cache(maxsize=4096)
def _compiled_expression(source: str):
    return EVALUATOR.compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=4096)
def _compiled_template(source: str):
    return EVALUATOR.from_string(source)


def _defined(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError naming what is missing
    return value


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    """Evaluate a bare expression (a condition) in the sandbox; returns a Python value."""
    try:
        return _defined(_compiled_expression(source)(**variables))
    except ExpressionError:
        raise
    except Exception as exc:  # the sandbox's SecurityError, undefined names, type errors…
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def render(value: Any, variables: dict[str, Any]) -> Any:
    """Resolve templates inside a config value.

    A string that is exactly one `{{ expr }}` becomes the expression's value with its type
    (so `count: "{{ params.n }}"` gives an int); other templated strings render as text.
    """
    if isinstance(value, dict):
        return {name: render(item, variables) for name, item in value.items()}
    if isinstance(value, list):
        return [render(item, variables) for item in value]
    if not has_template(value):
        return value
    try:
        if is_whole_template(value):
            return _defined(_compiled_expression(value.strip()[2:-2].strip())(**variables))
        return _compiled_template(value).render(**variables)
    except ExpressionError:
        raise
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None
