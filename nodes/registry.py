"""The node-type catalogue.

Each node type is one class (see `nodes/types.py`) registered here under its key. Third-party
packages add types through the entry-point group `datamate.node_types`; each entry point
names a `NodeType` subclass. The catalogue is what the API serves, so the designer builds its
palette and config forms from it and never hard-codes a type.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
import logging
from typing import Any, ClassVar

from django.conf import settings
from jsonschema import Draft202012Validator

from nodes.execution import ExecutionContext, NodeResult
from nodes.expressions import evaluate, render

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "datamate.node_types"

CATEGORIES = ("data", "logic", "composition")

#: Handle every type offers: a failing node with `continue_on_failure` routes here.
ERROR_HANDLE = "error"

#: Per-node execution settings, common to every type (stored on Node.settings).
SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "retries": {"type": "integer", "minimum": 0, "maximum": 20, "description": "Attempts after the first failure."},
        "retry_backoff_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 7 * 24 * 3600},
        "cache": {"type": "boolean", "description": "Reuse the output of an identical earlier execution."},
        "continue_on_failure": {"type": "boolean", "description": "Route failures to the error handle."},
        "join": {
            "enum": ["all", "any", "none_failed"],
            "description": "When a node with several inputs starts.",
        },
    },
}


@dataclass(frozen=True)
class ConfigError:
    """One problem in a node's config; `field` is a dotted path inside the config."""

    field: str
    message: str


class NodeType:
    """Base class of every node type. Subclasses set the class attributes below."""

    key: ClassVar[str]
    category: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    config_schema: ClassVar[dict[str, Any]] = {"type": "object", "additionalProperties": False, "properties": {}}
    #: Config fields holding a bare expression (no `{{ }}`), e.g. a condition.
    expression_fields: ClassVar[tuple[str, ...]] = ()
    #: Templates the executor renders itself, per record (with `record`, `index`), so a run
    #: passes them on unrendered.
    record_template_fields: ClassVar[tuple[str, ...]] = ()
    #: False for types that make data from nothing, so they may start a pipeline.
    needs_input: ClassVar[bool] = False
    #: True for containers (Loop) whose children form a body; the engine runs them.
    is_container: ClassVar[bool] = False
    #: Bump when the executor's results change: it is part of the result-cache key.
    executor_version: ClassVar[str] = "1"
    #: Why one call of `execute` is not the whole job (a body, a timer, a child run), if so:
    #: such a node cannot be tested on its own.
    not_standalone: ClassVar[str] = ""

    @classmethod
    def output_handles(cls, config: dict[str, Any]) -> list[str]:
        """Names of the source handles a node of this type offers, given its config."""
        return ["out", ERROR_HANDLE]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[ConfigError]:
        """Rules beyond the JSON Schema. The schema itself is checked by the graph validator."""
        return []

    @classmethod
    def resolve_config(cls, config: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
        """The config with its templates rendered and its expression fields evaluated, in the
        sandbox. Containers keep their expressions: they evaluate them per iteration."""
        return {
            name: (value if cls.is_container else evaluate(value, variables))
            if name in cls.expression_fields
            else value
            if name in cls.record_template_fields
            else render(value, variables)
            for name, value in config.items()
        }

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        raise NotImplementedError(f"{cls.key} has no executor")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "key": cls.key,
            "category": cls.category,
            "label": cls.label,
            "description": cls.description,
            "config_schema": cls.config_schema,
            "expression_fields": list(cls.expression_fields),
            "needs_input": cls.needs_input,
            "is_container": cls.is_container,
            "handles": cls.output_handles(default_config(cls)),
            "default_config": default_config(cls),
        }


def default_config(node_type: type[NodeType]) -> dict[str, Any]:
    return {
        name: prop["default"]
        for name, prop in node_type.config_schema.get("properties", {}).items()
        if "default" in prop
    }


class UnknownNodeType(KeyError):
    pass


_registry: dict[str, type[NodeType]] = {}
_loaded = False


def register(node_type: type[NodeType]) -> type[NodeType]:
    """Class decorator: add a type to the catalogue (its schema is checked here, once)."""
    if node_type.category not in CATEGORIES:
        raise ValueError(f"{node_type.__name__}: category must be one of {CATEGORIES}")
    Draft202012Validator.check_schema(node_type.config_schema)
    existing = _registry.get(node_type.key)
    if existing is not None and existing is not node_type:
        raise ValueError(f"node type {node_type.key!r} is registered twice ({existing.__name__}, {node_type.__name__})")
    _registry[node_type.key] = node_type
    return node_type


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from nodes import types  # noqa: F401  (registers the built-in types)

    for module in settings.DATAMATE_NODE_TYPE_MODULES:
        import_module(module)
    load_entry_points()


def load_entry_points() -> None:
    """Register the node types that installed packages declare in `datamate.node_types`."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(entry_point.load())
        except Exception:
            # A broken plug-in must not take the product down; it is left out and logged.
            logger.exception("could not load node type plug-in %s", entry_point.name)


def get(key: str) -> type[NodeType]:
    _load()
    try:
        return _registry[key]
    except KeyError:
        raise UnknownNodeType(key) from None


def all_types() -> list[type[NodeType]]:
    _load()
    return sorted(_registry.values(), key=lambda t: (CATEGORIES.index(t.category), t.key))
