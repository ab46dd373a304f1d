"""The node-type catalogue.

Each node type is one class (see `nodes/types.py`) registered here under its key. Third-party
packages add types through the entry-point group `datamate.node_types`; each entry point
names a `NodeType` subclass. The catalogue is what the API serves, so the designer builds its
palette and config forms from it and never hard-codes a type.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
from importlib import import_module
from typing import Any, ClassVar

from django.conf import settings
from jsonschema import Draft202012Validator

from nodes import schemas
from nodes.catalogue import Catalogue
from nodes.execution import ExecutionContext, NodeResult
from nodes.expressions import ExpressionError, evaluate, render

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
    #: Data nodes whose work splits over slices of their input, run as parallel tasks (the
    #: `shards` config; see pipelines/engine/shards.py). Such an executor reads its input with
    #: `nodes.data.input_manifests` and returns a record artifact (`nodes.data.result`).
    shardable: ClassVar[bool] = False

    @classmethod
    def shard_stages(cls, config: dict[str, Any]) -> int:
        """How many stages a sharded execution takes (more than one when records must be
        routed by key between stages, as for deduplication); used for progress."""
        return 1

    @classmethod
    def merge_shards(cls, stages: list[list[dict[str, Any]]]) -> dict[str, Any]:
        """The node's own output fields (besides count, fields, samples and manifest) from its
        shards' outputs, stage by stage, each stage in shard order."""
        return cls.merge_outputs(stages[-1])

    @classmethod
    def merge_outputs(cls, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        """One set of extra output fields from the shards' outputs: numbers and {name: number}
        counters are summed; any other value is the first shard's (the same in every shard
        for settings-like fields). Types whose fields merge differently override this."""
        merged: dict[str, Any] = {}
        for name in outputs[0]:
            if name in RECORD_ARTIFACT_FIELDS:
                continue
            values = [output.get(name) for output in outputs]
            if all(_is_number(value) for value in values):
                merged[name] = sum(values)
            elif all(isinstance(value, dict) and value and all(map(_is_number, value.values())) for value in values):
                totals: dict[str, Any] = {}
                for value in values:
                    for key, number in value.items():
                        totals[key] = totals.get(key, 0) + number
                merged[name] = totals
            else:
                merged[name] = values[0]
        return merged

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
        sandbox. Containers keep their expressions: they evaluate them per iteration. An error
        names the field."""
        resolved = {}
        for name, value in config.items():
            try:
                if name in cls.expression_fields:
                    resolved[name] = value if cls.is_container else evaluate(value, variables)
                else:
                    resolved[name] = value if name in cls.record_template_fields else render(value, variables)
            except ExpressionError as exc:
                raise ExpressionError(f"{name}: {exc}") from None
        # A whole `{{ }}` value gets its type only now (the designer let it pass): the config
        # an executor receives fits the schema the designer checked. Expression fields are
        # checked as written; what they evaluate to is the executor's.
        checked = {**resolved, **{name: config[name] for name in cls.expression_fields if name in config}}
        error = next(iter(config_validator(cls).iter_errors(checked)), None)
        if error is not None:
            raise ExpressionError(f"{schemas.locate(error, '')}: {schemas.message(error)}")
        return resolved

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        raise NotImplementedError(f"{cls.key} has no executor")

    @classmethod
    def cache_material(cls, ctx: ExecutionContext) -> Any:
        """What a result depends on besides the type, owner, resolved config and inputs (e.g.
        which version `latest` names now): part of the result-cache key."""
        return None

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
            # The engine takes an incoming edge into every type: one that needs no input
            # (Input Dataset) then starts after its source, e.g. after a Wait.
            "accepts_input": True,
            # For the default config; POST /api/node-types/handles/ answers for any config
            # (a Parallel node has one handle per branch).
            "handles": cls.output_handles(default_config(cls)),
            "default_config": default_config(cls),
        }


#: What every record-artifact output carries (`nodes.data.result`); merged by the engine.
RECORD_ARTIFACT_FIELDS = frozenset({"count", "fields", "samples", "manifest"})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def default_config(node_type: type[NodeType]) -> dict[str, Any]:
    return schemas.defaults(node_type.config_schema)


class UnknownNodeType(KeyError):
    pass


def _check(node_type: type[NodeType]) -> None:
    if node_type.category not in CATEGORIES:
        raise ValueError(f"{node_type.__name__}: category must be one of {CATEGORIES}")


def _load_builtins() -> None:
    from nodes import types  # noqa: F401  (registers the built-in types)

    for module in settings.DATAMATE_NODE_TYPE_MODULES:
        import_module(module)


_catalogue = Catalogue(
    noun="node type",
    group=ENTRY_POINT_GROUP,
    name_of=lambda node_type: node_type.key,
    check=_check,
    load_builtins=_load_builtins,
    unknown=UnknownNodeType,
)
_registry = _catalogue.items
register = _catalogue.register
load_entry_points = _catalogue.load_entry_points


def get(key: str) -> type[NodeType]:
    return _catalogue.get(key)


def all_types() -> list[type[NodeType]]:
    return _catalogue.all(lambda t: (CATEGORIES.index(t.category), t.key))


@functools.cache
def config_validator(node_type: type[NodeType]) -> Draft202012Validator:
    """The JSON Schema validator of a type's config, built once per process."""
    return Draft202012Validator(node_type.config_schema)
