"""The one validation of a pipeline document, used by save, import, run and the API.

`validate_document(doc)` returns a list of `GraphError`s, each naming the node key (when
one is at fault) and the field. It is pure: no database, so it is cheap to call anywhere.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
import math
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from nodes import registry, schemas
from nodes.expressions import (
    ExpressionError,
    expression_references,
    has_template,
    is_whole_template,
    template_references,
)
from pipelines import documents
from pipelines.parameters import value_error


@dataclass(frozen=True)
class GraphError:
    field: str
    message: str
    node: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.node}: {self.field}: {self.message}" if self.node else f"{self.field}: {self.message}"


class GraphInvalid(Exception):
    """Raised by services when a document does not validate."""

    def __init__(self, errors: list[GraphError]):
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


_DOCUMENT_VALIDATOR = Draft202012Validator(documents.DOCUMENT_SCHEMA)
_SETTINGS_VALIDATOR = Draft202012Validator(registry.SETTINGS_SCHEMA)


def _schema_errors(validator: Draft202012Validator, instance: Any, prefix: str) -> Iterator[tuple[str, str]]:
    """(field, message) for each schema violation; a whole `{{ }}` value is checked at run time."""
    for error in validator.iter_errors(instance):
        if is_whole_template(error.instance):
            continue
        yield schemas.locate(error, prefix), _message(error)


def _message(error: SchemaError) -> str:
    if error.validator == "pattern" and error.validator_value == documents.KEY_PATTERN:
        return "must start with a letter or _ and contain only letters, digits and _ (at most 64)"
    return schemas.message(error)


def _node_key_at(document: dict[str, Any], path: list[Any]) -> str | None:
    if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int):
        nodes = document.get("nodes")
        if isinstance(nodes, list) and path[1] < len(nodes) and isinstance(nodes[path[1]], dict):
            key = nodes[path[1]].get("key")
            return key if isinstance(key, str) else None
    return None


#: Deeper values are refused: real configs nest a few levels, and the checks and the copies
#: that follow recurse (a RecursionError would be a 500).
MAX_NESTING = 100


def _value_problems(document: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """(path, message) for what JSON or the database cannot store, and for nesting beyond
    MAX_NESTING. Iterative, so a deep document cannot exhaust the stack here."""
    stack: list[tuple[Any, list[Any]]] = [(document, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            # 1e400: JSON parsing turns it into inf, which JSON cannot store.
            yield path, "number out of range"
        elif isinstance(value, str) and "\x00" in value:
            # PostgreSQL text and jsonb cannot hold NUL.
            yield path, "must not contain the NUL character"
        elif isinstance(value, dict | list):
            if len(path) >= MAX_NESTING:
                yield path, f"nested too deeply (at most {MAX_NESTING} levels)"
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, item in items:
                if isinstance(name, str) and "\x00" in name:
                    yield [*path, name], "must not contain the NUL character"
                else:
                    stack.append((item, [*path, name]))


_SIZE_LIMITS = (
    ("parameters", documents.MAX_PARAMETERS),
    ("nodes", documents.MAX_NODES),
    ("edges", documents.MAX_EDGES),
)


def validate_document(document: Any) -> list[GraphError]:
    if not isinstance(document, dict):
        return [GraphError("document", "must be a JSON object")]
    # Sizes first: checking each of 100,000 edges against the schema would take seconds.
    too_many = [
        GraphError(name, f"too many items (at most {limit})")
        for name, limit in _SIZE_LIMITS
        if isinstance(document.get(name), list) and len(document[name]) > limit
    ]
    if too_many:
        return too_many
    shape_errors = [
        GraphError(schemas.locate(error, ""), _message(error), _node_key_at(document, list(error.absolute_path)))
        for error in _DOCUMENT_VALIDATOR.iter_errors(document)
    ]
    shape_errors += [
        GraphError(schemas.format_path("", path), message, _node_key_at(document, path))
        for path, message in _value_problems(document)
    ]
    if shape_errors:
        # The graph rules below rely on the shape, so stop here.
        return sorted(shape_errors, key=lambda e: e.field)
    doc = documents.canonical(document)
    errors: list[GraphError] = []
    errors += _check_parameters(doc["parameters"])
    # Positions refer to the request's order, so errors point at what the user sent.
    node_index = {node["key"]: index for index, node in enumerate(document.get("nodes", []))}
    errors += _check_nodes(doc, node_index)
    edge_errors = _check_edges(doc, document.get("edges", []))
    errors += edge_errors
    if not edge_errors:
        errors += _check_structure(doc)
    errors += _check_references(doc, node_index)
    return errors


def _check_parameters(parameters: list[dict[str, Any]]) -> list[GraphError]:
    errors = []
    seen: set[str] = set()
    for index, parameter in enumerate(parameters):
        field = f"parameters[{index}]"
        if parameter["name"] in seen:
            errors.append(GraphError(f"{field}.name", f"duplicate parameter name {parameter['name']!r}"))
        seen.add(parameter["name"])
        if parameter["type"] == "enum" and not parameter.get("choices"):
            errors.append(GraphError(f"{field}.choices", "an enum parameter needs a list of choices"))
            continue
        if parameter["default"] is not None:
            problem = value_error(parameter, parameter["default"])
            if problem:
                errors.append(GraphError(f"{field}.default", problem))
    return errors


def _check_nodes(doc: dict[str, Any], node_index: dict[str, int]) -> list[GraphError]:
    errors = []
    seen: set[str] = set()
    by_key = {node["key"]: node for node in doc["nodes"]}
    for raw_key in (n["key"] for n in doc["nodes"]):
        if raw_key in seen:
            errors.append(GraphError("key", f"duplicate node key {raw_key!r}", raw_key))
        seen.add(raw_key)
    for node in doc["nodes"]:
        key = node["key"]
        prefix = f"nodes[{node_index[key]}]"
        try:
            node_type = registry.get(node["type"])
        except registry.UnknownNodeType:
            errors.append(GraphError(f"{prefix}.type", f"unknown node type {node['type']!r}", key))
            continue
        config = node["config"]
        errors += [
            GraphError(field, message, key)
            for field, message in _schema_errors(registry.config_validator(node_type), config, f"{prefix}.config")
        ]
        errors += [
            GraphError(f"{prefix}.config.{problem.field}", problem.message, key)
            for problem in node_type.validate_config(config)
        ]
        errors += [
            GraphError(field, message, key)
            for field, message in _schema_errors(_SETTINGS_VALIDATOR, node["settings"], f"{prefix}.settings")
        ]
        parent_key = node["parent"]
        if parent_key is not None:
            parent = by_key.get(parent_key)
            if parent is None:
                errors.append(GraphError(f"{prefix}.parent", f"no node with key {parent_key!r}", key))
            elif not _is_container(parent["type"]):
                errors.append(GraphError(f"{prefix}.parent", f"{parent_key!r} is not a Loop container", key))
            elif _parent_chain_loops(key, by_key):
                errors.append(GraphError(f"{prefix}.parent", "a container cannot be inside itself", key))
    return errors


def _is_container(type_key: str) -> bool:
    try:
        return registry.get(type_key).is_container
    except registry.UnknownNodeType:
        return False


def _parent_chain_loops(key: str, by_key: dict[str, dict[str, Any]]) -> bool:
    seen = {key}
    current = by_key[key]["parent"]
    while current is not None and current in by_key:
        if current in seen:
            return True
        seen.add(current)
        current = by_key[current]["parent"]
    return False


def _check_edges(doc: dict[str, Any], raw_edges: list[dict[str, Any]]) -> list[GraphError]:
    errors = []
    by_key = {node["key"]: node for node in doc["nodes"]}
    seen: set[tuple[str, str, str]] = set()
    for index, raw in enumerate(raw_edges):
        edge = documents.canonical_edge(raw)
        prefix = f"edges[{index}]"
        source, target = by_key.get(edge["source"]), by_key.get(edge["target"])
        if source is None:
            errors.append(GraphError(f"{prefix}.source", f"no node with key {edge['source']!r}"))
        if target is None:
            errors.append(GraphError(f"{prefix}.target", f"no node with key {edge['target']!r}"))
        if source is None or target is None:
            continue
        identity = (edge["source"], edge["source_handle"], edge["target"])
        if identity in seen:
            errors.append(GraphError(prefix, "duplicate edge", edge["source"]))
        seen.add(identity)
        try:
            handles = registry.get(source["type"]).output_handles(source["config"])
        except registry.UnknownNodeType:
            continue  # already reported on the node
        if edge["source_handle"] not in handles:
            errors.append(
                GraphError(
                    f"{prefix}.source_handle",
                    f"{source['type']} has no handle {edge['source_handle']!r} (it has {', '.join(handles)})",
                    edge["source"],
                )
            )
        if edge["source"] == edge["target"]:
            errors.append(GraphError(prefix, "a node cannot connect to itself; use a Loop", edge["source"]))
        elif source["parent"] != target["parent"]:
            errors.append(
                GraphError(
                    prefix,
                    "an edge cannot cross a Loop boundary; connect to the Loop node itself",
                    edge["source"],
                )
            )
    return errors


def _check_structure(doc: dict[str, Any]) -> list[GraphError]:
    """Cycles, then reachability. Edges are known to be valid here."""
    successors: dict[str, list[str]] = defaultdict(list)
    has_incoming: set[str] = set()
    for edge in doc["edges"]:
        successors[edge["source"]].append(edge["target"])
        has_incoming.add(edge["target"])

    cycle = _find_cycle([n["key"] for n in doc["nodes"]], successors)
    if cycle:
        path = " → ".join([*cycle, cycle[0]])
        return [GraphError("edges", f"cycle {path}; repeat steps with a Loop node instead", cycle[0])]

    errors = []
    roots = []
    for node in doc["nodes"]:
        if node["key"] in has_incoming:
            continue
        needs_input = _needs_input(node["type"])
        # The first nodes of a Loop body receive the Loop's input.
        if needs_input and node["parent"] is None:
            errors.append(GraphError("edges", "needs an input: connect an upstream node to it", node["key"]))
        else:
            roots.append(node["key"])
    reached = set(roots)
    queue = deque(roots)
    while queue:
        for successor in successors[queue.popleft()]:
            if successor not in reached:
                reached.add(successor)
                queue.append(successor)
    for node in doc["nodes"]:
        if node["key"] not in reached and node["key"] in has_incoming:
            errors.append(GraphError("edges", "unreachable: no path from a starting node leads here", node["key"]))
    return errors


def _needs_input(type_key: str) -> bool:
    try:
        return registry.get(type_key).needs_input
    except registry.UnknownNodeType:
        return False


def _find_cycle(keys: list[str], successors: dict[str, list[str]]) -> list[str] | None:
    """One cycle as a list of keys, or None. Iterative DFS: deep graphs must not recurse."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(keys, white)
    for start in keys:
        if colour[start] != white:
            continue
        stack = [(start, iter(successors[start]))]
        path = [start]
        colour[start] = grey
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = black
                stack.pop()
                path.pop()
            elif colour[child] == grey:
                return path[path.index(child) :]
            elif colour[child] == white:
                colour[child] = grey
                stack.append((child, iter(successors[child])))
                path.append(child)
    return None


def _strings(value: Any, path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, [*path, name])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, [*path, index])


def _check_references(doc: dict[str, Any], node_index: dict[str, int]) -> list[GraphError]:
    """Templates and expressions parse, and name only defined parameters and existing nodes."""
    parameter_names = {p["name"] for p in doc["parameters"]}
    node_keys = {n["key"] for n in doc["nodes"]}
    errors = []
    for node in doc["nodes"]:
        try:
            expression_fields = registry.get(node["type"]).expression_fields
        except registry.UnknownNodeType:
            continue
        for path, text in _strings(node["config"], []):
            is_expression = len(path) == 1 and path[0] in expression_fields
            if not is_expression and not has_template(text):
                continue
            field = schemas.format_path(f"nodes[{node_index[node['key']]}].config", path)
            try:
                refs = expression_references(text) if is_expression else template_references(text)
            except ExpressionError as exc:
                errors.append(GraphError(field, str(exc), node["key"]))
                continue
            errors += [
                GraphError(field, f"refers to undefined parameter {name!r}", node["key"])
                for name in sorted(refs.params - parameter_names)
            ]
            errors += [
                GraphError(field, f"refers to unknown node {name!r}", node["key"])
                for name in sorted(refs.nodes - node_keys)
            ]
    return errors
