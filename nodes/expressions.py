"""The one sandbox for templated config values and condition expressions.

Both go through Jinja2's sandbox: no `eval`, no access to Python internals. Validation only
parses them (`ENVIRONMENT`: nothing runs); the engine evaluates them in `BoundedSandbox`,
which adds a budget of steps, CPU time and size, and keeps the run's values read-only.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
import functools
import itertools
import re
import time
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.lexer import describe_token
from jinja2.parser import Parser
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg

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


#: Tags that read other templates: there are none to read, and files are not for templates.
_FILE_TAGS = (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)


def _file_tag_message(tag: nodes.Node) -> str:
    name = {nodes.FromImport: "from … import"}.get(type(tag), type(tag).__name__.lower())
    return f"{{% {name} %}} is not available: templates cannot read other templates or files"


def _parse(source: str, expression: bool = False) -> nodes.Node:
    """The tree of a template, or with `expression` of a bare expression (parsed the way
    `compile_expression` parses it, so what passes here also evaluates)."""
    try:
        if expression:
            parser = Parser(ENVIRONMENT, source, state="variable")
            tree = parser.parse_expression()
            if not parser.stream.eos:
                parser.fail(f"unexpected {describe_token(parser.stream.current)!r}", parser.stream.current.lineno)
        else:
            tree = ENVIRONMENT.parse(source)
        tag = next(tree.find_all(_FILE_TAGS), None)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.message}") from None
    except RecursionError:
        raise ExpressionError("nested too deeply") from None
    except ValueError as exc:  # Python refuses int literals of more than 4,300 digits
        problem = "a number is too long" if str(exc).startswith("Exceeds the limit") else str(exc)
        raise ExpressionError(f"syntax error: {problem}") from None
    if tag is not None:
        raise ExpressionError(_file_tag_message(tag))
    return tree


def _references(tree: nodes.Node) -> References:
    """Names used as `params.x` / `params['x']` and `nodes.k` / `nodes['k']`."""
    found: dict[str, set[str]] = {"params": set(), "nodes": set()}
    kinds = (nodes.Getattr, nodes.Getitem)
    # find_all() yields what a node holds, not the node: a bare `params.x` is itself one.
    for node in itertools.chain([tree] if isinstance(tree, kinds) else [], tree.find_all(kinds)):
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
    tree = _parse(source)
    try:
        return _references(tree)
    except RecursionError:
        raise ExpressionError("nested too deeply") from None


def expression_references(source: str) -> References:
    """Parse a bare expression (`params.x > 3`); raise ExpressionError if invalid."""
    if "{{" in source or "{%" in source:
        raise ExpressionError("write the expression without {{ }}")
    tree = _parse(source, expression=True)
    try:
        return _references(tree)
    except RecursionError:
        raise ExpressionError("nested too deeply") from None


# --- evaluation ---------------------------------------------------------------------
#
# Jinja2's sandbox stops attribute access to Python internals, but not work and memory:
# `'x'.center(10**9)`, `'{:>999999999}'.format(1)`, nested loops over ranges, strings that
# double in a loop, or a list of a thousand references to one big string printed out would
# each hold a worker for minutes or take gigabytes. So one evaluation (a condition, or one
# config value with its nested values) gets a budget: a number of steps (loop iterations,
# calls, filters) and of CPU seconds, a size for any one value it builds or writes out, and a
# total of what it may allocate. Past one of them it fails with ExpressionError.


class LimitExceeded(Exception):
    """An evaluation went past its budget. Not a ValueError or TypeError: nothing in Jinja2
    or in a filter catches it on the way out."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0
    allocated: int = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("datamate_expression_budget", default=None)


def _budget() -> _Budget:
    """The running evaluation's budget (a fresh one for a call from outside evaluate/render)."""
    return _BUDGET.get() or _Budget(time.thread_time() + BoundedSandbox.MAX_SECONDS)


@contextlib.contextmanager
def _limits() -> Iterator[None]:
    if _BUDGET.get() is not None:  # a nested value of the config being rendered
        yield
        return
    token = _BUDGET.set(_Budget(time.thread_time() + BoundedSandbox.MAX_SECONDS))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _step(budget: _Budget | None = None) -> None:
    budget = budget or _budget()
    budget.steps += 1
    if budget.steps > BoundedSandbox.MAX_STEPS:
        raise LimitExceeded(f"more than {BoundedSandbox.MAX_STEPS:,} steps (loop iterations and calls)")
    # CPU time of this thread, not wall time: a busy machine must not fail a fair template.
    if not budget.steps % 32 and time.thread_time() > budget.deadline:
        raise LimitExceeded(f"more than {BoundedSandbox.MAX_SECONDS:g} s of work")


def _charge(value: Any) -> Any:
    if isinstance(value, str | bytes | bytearray | list | tuple | dict):
        budget = _budget()
        budget.allocated += len(value)
        if budget.allocated > BoundedSandbox.MAX_ALLOCATED:
            raise LimitExceeded(f"more than {BoundedSandbox.MAX_ALLOCATED:,} characters or items built in all")
    return value


def _too_large(what: str) -> LimitExceeded:
    return LimitExceeded(f"{what} would be too large (the limit is {BoundedSandbox.MAX_SIZE:,} characters or items)")


_SCALARS = frozenset({int, float, bool, type(None)})


def weight(value: Any, limit: int | None = None) -> int:
    """How many characters and items `value` stands for written out: a part it holds many
    times counts each time (`[s] * 1000` weighs 1000 * len(s)). Raises LimitExceeded past `limit`."""
    limit = BoundedSandbox.MAX_SIZE if limit is None else limit
    known: dict[int, int] = {}

    def measure(item: Any) -> int:
        if isinstance(item, str | bytes | bytearray):
            return len(item)
        if type(item) is int:
            return _digits(item)
        if isinstance(item, Undefined):
            str(item)  # a missing name inside a list or dict: raises UndefinedError naming it
        if isinstance(item, KeysView | ValuesView | ItemsView):
            item = item.mapping  # type: ignore[attr-defined]
        if isinstance(item, Namespace):
            item = item._Namespace__attrs  # type: ignore[attr-defined]
        if isinstance(item, Mapping):  # a dict, or the read-only view of one behind a dict view
            parts: Iterable[Any] = itertools.chain.from_iterable(item.items())
        elif isinstance(item, list | tuple | set | frozenset):
            parts = item
        else:
            return 1
        if id(item) in known:
            return known[id(item)]
        if len(item) * 2 > limit:
            raise _too_large("the value")
        if not isinstance(item, Mapping):
            # Most lists hold only numbers or only strings: measured at C speed.
            kinds = set(map(type, item))
            if kinds <= _SCALARS:
                numbers = item if kinds == {int} else [number for number in item if type(number) is int]
                widest = _digits(max(max(numbers), -min(numbers))) if numbers else 1
                total = (widest + 1) * len(item) + 1
                if total > limit:
                    raise _too_large("the value")
                return total
            if kinds <= {str}:
                total = sum(map(len, item)) + len(item) + 1
                if total > limit:
                    raise _too_large("the value")
                return total
        known[id(item)] = 1  # a container holding itself counts once
        total = 1
        for part in parts:
            total += measure(part) + 1
            if total > limit:
                raise _too_large("the value")
        known[id(item)] = total
        return total

    return measure(value)


def _json_indentation(value: Any, pad: int, limit: int) -> int:
    """The characters `tojson(indent=pad)` writes beyond `value`'s weight: each item of a
    list or dict on its own line, indented `pad` per level of nesting (a deep value is mostly
    indentation), and the quotes and separators around items. Raises LimitExceeded past `limit`."""
    known: dict[tuple[int, int], int] = {}

    def layout(item: Any, depth: int) -> int:
        if isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
            per_item = pad * depth + 6  # newline, comma, the key's quotes, ": "
        elif isinstance(item, list | tuple):
            children, per_item = item, pad * depth + 2
        else:
            return 0
        key = (id(item), depth)
        if key not in known:
            total = len(item) * per_item + pad * (depth - 1) + 2  # the closing bracket's line
            for child in children:
                if isinstance(child, str):
                    total += 2
                elif isinstance(child, Mapping | list | tuple):
                    total += layout(child, depth + 1)
                if total > limit:
                    raise _too_large("the JSON text")
            known[key] = total
        return known[key]

    return layout(value, 1)


def _digits(number: int) -> int:
    """About how many characters an int prints as (log10(2) = 0.30103), at least 1."""
    return int(number.bit_length() * 0.30103) + 2


def _checked_size(value: Any) -> Any:
    weight(value)
    return value


def _check_count(count: Any, what: str) -> None:
    if isinstance(count, int) and abs(count) > BoundedSandbox.MAX_SEQUENCE:
        raise LimitExceeded(f"{what} {count} is too large (at most {BoundedSandbox.MAX_SEQUENCE:,})")


_NESTED_PERCENT_KEY = re.compile(r"%\([^)]*\(")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def _check_percent(template: Any, values: Any) -> None:
    """`template % values` (the `%` operator and the `format` filter) stays within the limits."""
    if not isinstance(template, str | bytes):
        return
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    if _NESTED_PERCENT_KEY.search(text):
        # Python matches the key's parentheses in pairs; the width after it would go unseen.
        raise ExpressionError("a %(key) with parentheses inside it is not supported")
    specs = _PERCENT_SPEC.findall(text)
    stars = False
    for width, precision, _ in specs:
        for number in (width, precision):
            stars = stars or number == "*"
            if number.isdigit():
                _check_count(int(number), "a width or precision of")
    items = (
        list(values.values()) if isinstance(values, dict) else list(values) if isinstance(values, tuple) else [values]
    )
    if stars:
        for item in items:
            _check_count(item, "a width or precision of")
    largest = max((weight(item) for item in items), default=0)
    # `%r` may escape each character into four.
    if len(text) + len(specs) * 4 * largest > BoundedSandbox.MAX_SIZE:
        raise _too_large("the formatted text")


def _sequence_size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | bytearray | list | tuple) else None


# What a method may build beyond the size of its object: checked before it runs.
def _check_method(method: Any, args: tuple, kwargs: dict) -> tuple:
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        if name in ("center", "ljust", "rjust", "zfill") and args:
            _check_count(args[0], f"{name}() width")
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            _check_count(size, "expandtabs() tab size")
            if (
                isinstance(size, int)
                and owner.count("\t" if isinstance(owner, str) else b"\t") * size > BoundedSandbox.MAX_SIZE
            ):
                raise _too_large("the text")
        elif name == "replace" and len(args) >= 2:
            _check_replace(owner, *args[:3])
        elif name == "join" and args:
            items = list(args[0]) if not isinstance(args[0], list | tuple) else args[0]
            if weight(items) + len(owner) * len(items) > BoundedSandbox.MAX_SIZE:
                raise _too_large("the joined text")
            args = (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], dict):
            longest = max((weight(item) for item in args[0].values()), default=1)
            if len(owner) * longest > BoundedSandbox.MAX_SIZE:
                raise _too_large("the translated text")
    elif isinstance(owner, int) and name == "to_bytes":
        _check_count(args[0] if args else kwargs.get("length", 1), "to_bytes() length")
    return args


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(text, str | bytes) and isinstance(old, type(text)) and isinstance(new, type(text))):
        return
    found = text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    if len(text) + found * max(0, len(new) - len(old)) > BoundedSandbox.MAX_SIZE:
        raise _too_large("the replaced text")


def _positional(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


#: Characters the `wordwrap` filter takes (about 0.1 s of work).
MAX_WRAPPED = 100_000


def _check_filter(name: str, value: Any, args: tuple, kwargs: dict) -> Any:
    """The filters whose arguments, not their input, decide how much they build; returns the
    input (a one-pass iterator made into a list, to be measured)."""
    if name == "center":
        _check_count(_positional(args, kwargs, 0, "width", 80), "center() width")
    elif name == "indent":
        width = _positional(args, kwargs, 0, "width", 4)
        lines = str(value).count("\n") + 1 if isinstance(value, str) else 1
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        if weight(value) + lines * pad > BoundedSandbox.MAX_SIZE:
            raise _too_large("the indented text")
    elif name == "wordwrap":
        # textwrap does all its work in one call, between two checks of the CPU budget.
        if weight(value) > MAX_WRAPPED:
            raise LimitExceeded(f"wordwrap takes at most {MAX_WRAPPED:,} characters")
        wrapstring = _positional(args, kwargs, 2, "wrapstring")
        if (
            isinstance(wrapstring, str)
            and len(wrapstring) > 2
            and weight(value) * len(wrapstring) > BoundedSandbox.MAX_SIZE
        ):
            raise _too_large("the wrapped text")
    elif name == "replace":
        _check_replace(value, *args[:3])
    elif name == "format":
        _check_percent(value, kwargs or args)
    elif name in ("join", "sum"):
        if not isinstance(value, list | tuple | dict | str):
            value = list(value)
        separator = _positional(args, kwargs, 0, "d", "") if name == "join" else ""
        if weight(value) + len(str(separator)) * len(value) > BoundedSandbox.MAX_SIZE:
            raise _too_large(f"the result of {name}")
    elif name in ("slice", "batch"):
        _check_count(_positional(args, kwargs, 0, "slices" if name == "slice" else "linecount"), f"{name}() count")
    elif name == "tojson":
        indent = _positional(args, kwargs, 0, "indent")
        pad = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
        size = weight(value)  # raises past MAX_SIZE, indented or not
        if pad > 0:
            _json_indentation(value, pad, BoundedSandbox.MAX_SIZE - size)
    elif name not in _STRUCTURAL_FILTERS:
        weight(value)  # it writes its input out as text
    return value


#: Filters that only pick, count or reorder what they are given: their input is not measured.
_STRUCTURAL_FILTERS = frozenset({
    "abs", "attr", "batch", "bool", "count", "d", "default", "dictsort", "first", "float", "groupby", "int",
    "items", "last", "length", "list", "map", "max", "min", "random", "reject", "rejectattr", "reverse",
    "round", "select", "selectattr", "slice", "sort", "unique",
})  # fmt: skip


class _BoundedFormatter(SandboxedFormatter):
    """`str.format`: each field's width and value bounded, and the whole text as it grows."""

    def __init__(self, env: Any):
        super().__init__(env)
        self.size = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        _step()
        for number in re.findall(r"\d+", format_spec):
            _check_count(int(number), "a width or precision of")
        weight(value)
        text = super().format_field(value, format_spec)
        self.size += len(text)
        if self.size > BoundedSandbox.MAX_SIZE:
            raise _too_large("the formatted text")
        return _charge(text)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, plus the budget above. Immutable: an expression cannot change the run's
    params or an upstream output that later expressions read (`params.pop('x')`)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    MAX_POWER = 1000
    #: Repetitions (`'a' * n`), widths and counts a filter or method is given.
    MAX_SEQUENCE = 1_000_000
    #: Characters or items of any one value built or written out.
    MAX_SIZE = 5_000_000
    #: Characters or items built in all by one evaluation.
    MAX_ALLOCATED = 25_000_000
    MAX_INT_BITS = 16_384
    MAX_STEPS = 1_000_000
    MAX_SECONDS = 1.0

    def __init__(self, **options: Any):
        super().__init__(finalize=_checked_size, **options)
        # lipsum(n) writes n paragraphs of random text: work not bounded by anything.
        self.globals.pop("lipsum", None)
        # The global `dict` is the type itself, whose unbound methods the sandbox lets through
        # (`dict.update(params, ...)` would change the run's params): a plain function instead.
        self.globals["dict"] = _new_dict
        # urlize's work grows with the square of its input, all of it in one call.
        self.filters.pop("urlize", None)
        self.filters = {name: self._bounded_filter(name, function) for name, function in self.filters.items()}
        self.tests = {name: self._counted_test(function) for name, function in self.tests.items()}

    @staticmethod
    def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        offset = 0 if _PassArg.from_obj(function) is None else 1  # context / eval context / environment first

        @functools.wraps(function)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            _step()
            if len(args) > offset:
                value = _check_filter(name, args[offset], args[offset + 1 :], kwargs)
                args = (*args[:offset], value, *args[offset + 1 :])
            result = function(*args, **kwargs)
            if isinstance(result, str | bytes | list | tuple | dict):
                weight(result)  # what it built must fit too (`tojson` of a deep value)
            return _charge(result)

        return bounded

    @staticmethod
    def _counted_test(function: Callable[..., Any]) -> Callable[..., Any]:
        """A test (`select('number')` runs one per item) is a step, like a filter."""

        @functools.wraps(function)
        def counted(*args: Any, **kwargs: Any) -> Any:
            _step()
            return function(*args, **kwargs)

        return counted

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        return super()._generate(_guarded(source), *args, **kwargs)

    def concat(self, pieces: Iterable[str]) -> str:
        """Joins what a template, a macro or a `{% set %}` block writes out."""
        parts, size = [], 0
        for piece in pieces:
            size += len(piece)
            if size > self.MAX_SIZE:
                raise _too_large("the rendered text")
            parts.append(piece)
        return _charge("".join(parts))

    def bounded_concat(self, items: list[Any]) -> str:
        """`a ~ b`."""
        return self.concat(str(_checked_size(item)) for item in items)

    def bounded_iter(self, iterable: Any) -> Iterator[Any]:
        """What a `{% for %}` loops over: each item is a step."""
        budget = _budget()
        for item in iterable:
            _step(budget)
            yield item

    def sized(self, value: Any) -> Any:
        """A list, tuple or dict written in the template (`[a, a, a]` of an `a` that is itself big)."""
        return _checked_size(value)

    def call(__self, __context, __obj, *args, **kwargs):
        _step()
        if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (__self.bounded_iter(args[0]), *args[1:])
        args = _check_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, list | tuple | dict):
            weight(result)
        return _charge(result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None
        template = value.__self__
        is_format_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            return _charge(str(_BoundedFormatter(self).vformat(template, args, kwargs)))

        return bounded_format

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > self.MAX_POWER:
                raise ExpressionError(f"exponent {right} is too large")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > self.MAX_INT_BITS:
                raise LimitExceeded("the power would be too large a number")
        elif operator == "*":
            both_int = isinstance(left, int) and isinstance(right, int)
            if both_int and left.bit_length() + right.bit_length() > self.MAX_INT_BITS:
                raise LimitExceeded("the product would be too large a number")
            for sequence, count in ((left, right), (right, left)):
                size = _sequence_size(sequence)
                if size is not None and isinstance(count, int) and not isinstance(count, bool):
                    if size * count > self.MAX_SEQUENCE:
                        raise ExpressionError("the result would be too large")
                    if count > 0 and weight(sequence) * count > self.MAX_SIZE:
                        raise _too_large("the result")
        elif operator == "+":
            sequences = _sequence_size(left) is not None and _sequence_size(right) is not None
            if sequences and weight(left) + weight(right) > self.MAX_SIZE:
                raise _too_large("the sum")
        elif operator == "%":
            _check_percent(left, right)
        return _charge(super().call_binop(context, operator, left, right))


def _new_dict(*args: Any, **kwargs: Any) -> dict:
    """`dict(...)` in an expression."""
    return _charge(dict(*args, **kwargs))


def _env_call(name: str, argument: nodes.Expr, lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name), [argument], [], None, None, lineno=lineno)


def _guarded(tree: nodes.Node) -> nodes.Node:
    """The template's tree with loops counted and `~` and literal lists measured."""
    for field, value in tree.iter_fields():
        if isinstance(value, nodes.Node):
            setattr(tree, field, _guarded(value))
        elif isinstance(value, list):
            setattr(tree, field, [_guarded(item) if isinstance(item, nodes.Node) else item for item in value])
    if isinstance(tree, _FILE_TAGS):
        raise ExpressionError(_file_tag_message(tree))
    if isinstance(tree, nodes.For):
        tree.iter = _env_call("bounded_iter", tree.iter, tree.lineno)
    elif isinstance(tree, nodes.Concat):
        return _env_call("bounded_concat", nodes.List(tree.nodes, lineno=tree.lineno), tree.lineno)
    elif isinstance(tree, nodes.List | nodes.Dict) or (isinstance(tree, nodes.Tuple) and tree.ctx == "load"):
        return _env_call("sized", tree, tree.lineno)
    return tree


EVALUATOR = BoundedSandbox(autoescape=False, undefined=StrictUndefined)


@functools.lru_cache(maxsize=4096)
def _compiled_expression(source: str):
    return EVALUATOR.compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=4096)
def _compiled_template(source: str):
    return EVALUATOR.from_string(source)


def _defined(value: Any) -> Any:
    """The value an evaluation gives: defined, within the size limit, and not lazy (a `map`
    or `select` result is made a list here, still within the budget; a generator left for
    later would run outside it)."""
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError naming what is missing
    if isinstance(value, Iterator):
        budget = _budget()
        items = []
        for item in value:
            _step(budget)
            items.append(item)
        value = _charge(items)
    return _checked_size(value)


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    """Evaluate a bare expression (a condition) in the sandbox; returns a Python value."""
    try:
        with _limits():
            return _defined(_compiled_expression(source)(**variables))
    except ExpressionError:
        raise
    except LimitExceeded as exc:
        raise ExpressionError(f"refused: {exc}") from None
    except RecursionError:
        raise ExpressionError("refused: nested too deeply (recursion)") from None
    except Exception as exc:  # the sandbox's SecurityError, undefined names, type errors…
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def _inside(whole_template: str) -> str:
    """The expression of `{{ expr }}`, whitespace control (`{{- expr -}}`) included."""
    text = whole_template.strip()
    text = text[3:] if text.startswith("{{-") else text[2:]
    text = text[:-3] if text.endswith("-}}") else text[:-2]
    return text.strip()


def render(value: Any, variables: dict[str, Any]) -> Any:
    """Resolve templates inside a config value.

    A string that is exactly one `{{ expr }}` becomes the expression's value with its type
    (so `count: "{{ params.n }}"` gives an int); other templated strings render as text.
    """
    if isinstance(value, dict):
        with _limits():
            return {name: render(item, variables) for name, item in value.items()}
    if isinstance(value, list):
        with _limits():
            return [render(item, variables) for item in value]
    if not has_template(value):
        return value
    try:
        with _limits():
            if is_whole_template(value):
                return _defined(_compiled_expression(_inside(value))(**variables))
            return _compiled_template(value).render(**variables)
    except ExpressionError:
        raise
    except LimitExceeded as exc:
        raise ExpressionError(f"refused: {exc}") from None
    except RecursionError:
        raise ExpressionError("refused: nested too deeply (recursion)") from None
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None
