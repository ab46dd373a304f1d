"""The pipeline document: one JSON shape for save, export, import and templates.

    {"name", "description",
     "parameters": [{"name", "type", "required", "default", "description", "choices"?}],
     "nodes": [{"key", "type", "label", "config", "position": {"x", "y"}, "parent", "notes", "settings"}],
     "edges": [{"source", "source_handle", "target"}]}

Nodes and edges refer to node keys. `canonical()` fills defaults and sorts nodes and edges,
so an exported document is stable (git-friendly) and compares equal after a round trip.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from nodes.registry import SETTINGS_SCHEMA

MAX_NODES = 1000
MAX_EDGES = 5000
MAX_PARAMETERS = 100
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

PARAMETER_TYPES = ("string", "integer", "number", "boolean", "enum", "dataset", "datetime")

_PARAMETER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "type"],
    "properties": {
        "name": {"type": "string", "pattern": KEY_PATTERN},
        "type": {"enum": list(PARAMETER_TYPES)},
        "required": {"type": "boolean"},
        "default": {},
        "description": {"type": "string", "maxLength": 2000},
        "choices": {"type": "array", "minItems": 1, "maxItems": 1000},
    },
}

_NODE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "type"],
    "properties": {
        "key": {"type": "string", "pattern": KEY_PATTERN},
        "type": {"type": "string", "minLength": 1, "maxLength": 100},
        "label": {"type": "string", "maxLength": 200},
        "config": {"type": "object"},
        "position": {
            "type": "object",
            "additionalProperties": False,
            "required": ["x", "y"],
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        },
        "parent": {"type": ["string", "null"]},
        "notes": {"type": "string", "maxLength": 10000},
        "settings": SETTINGS_SCHEMA,
    },
}

_EDGE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source", "target"],
    "properties": {
        "source": {"type": "string", "minLength": 1},
        "source_handle": {"type": "string", "minLength": 1, "maxLength": 50},
        "target": {"type": "string", "minLength": 1},
    },
}

#: JSON Schema of the document's shape (types, required keys, sizes). The graph rules
#: (types known, handles, cycles, references…) are checked by `graph_validation`.
DOCUMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 10000},
        "parameters": {"type": "array", "items": _PARAMETER_SCHEMA, "maxItems": MAX_PARAMETERS},
        "nodes": {"type": "array", "items": _NODE_SCHEMA, "maxItems": MAX_NODES},
        "edges": {"type": "array", "items": _EDGE_SCHEMA, "maxItems": MAX_EDGES},
    },
}


def canonical_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    result = {
        "name": parameter["name"],
        "type": parameter["type"],
        "required": parameter.get("required", False),
        "default": parameter.get("default"),
        "description": parameter.get("description", ""),
    }
    if parameter["type"] == "enum" or "choices" in parameter:
        result["choices"] = parameter.get("choices", [])
    return result


def _coordinate(value: float) -> float | int:
    """Whole numbers as ints, so a stored float exports as the text it was imported from."""
    return int(value) if float(value).is_integer() else value


def canonical_node(node: dict[str, Any]) -> dict[str, Any]:
    position = node.get("position") or {}
    return {
        "key": node["key"],
        "type": node["type"],
        "label": node.get("label", ""),
        "config": copy.deepcopy(node.get("config", {})),
        "position": {"x": _coordinate(position.get("x", 0)), "y": _coordinate(position.get("y", 0))},
        "parent": node.get("parent"),
        "notes": node.get("notes", ""),
        "settings": copy.deepcopy(node.get("settings", {})),
    }


def canonical_edge(edge: dict[str, Any]) -> dict[str, Any]:
    return {"source": edge["source"], "source_handle": edge.get("source_handle", "out"), "target": edge["target"]}


def canonical(document: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, nodes sorted by key, edges by (source, handle, target).

    Expects a document whose shape already passed DOCUMENT_SCHEMA.
    """
    nodes = sorted((canonical_node(n) for n in document.get("nodes", [])), key=lambda n: n["key"])
    edges = sorted(
        (canonical_edge(e) for e in document.get("edges", [])),
        key=lambda e: (e["source"], e["source_handle"], e["target"]),
    )
    return {
        "name": document["name"],
        "description": document.get("description", ""),
        "parameters": [canonical_parameter(p) for p in document.get("parameters", [])],
        "nodes": nodes,
        "edges": edges,
    }


def dumps(document: dict[str, Any]) -> str:
    """The exported text: sorted keys and two-space indent, so diffs in git stay small."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
