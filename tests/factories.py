"""Builders for test objects. They go through the services, like every real caller."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client

from pipelines import services

#: The node types the issue names; the catalogue must offer at least these.
BUILTIN_NODE_TYPES = frozenset(
    {
        "input_dataset",
        "output_dataset",
        "data_collection",
        "data_cleaning",
        "data_synthesis",
        "data_annotation",
        "condition",
        "loop",
        "parallel",
        "wait",
        "subpipeline",
    }
)

EXAMPLE_PATH = (
    Path(__file__).resolve().parent.parent / "pipelines" / "builtin_templates" / "curate_annotate_or_synthesize.json"
)


def create_user(username: str = "alice", *, staff: bool = False, password: str = "pw-for-tests-1"):
    return get_user_model().objects.create_user(
        username=username, password=password, is_staff=staff, is_superuser=staff
    )


def example_document() -> dict[str, Any]:
    """Input → Cleaning → Condition (true → Annotation → Output; false → Synthesis → Output)."""
    return json.loads(EXAMPLE_PATH.read_text())


def node(key: str, type: str = "data_cleaning", **fields: Any) -> dict[str, Any]:
    defaults = {
        "input_dataset": {"dataset": "corpus"},
        "output_dataset": {"dataset": "out"},
        "data_cleaning": {"operators": [{"name": "exact_dedup"}]},
        "data_synthesis": {"prompt_template": "Write something."},
        "data_annotation": {"labels": ["a", "b"]},
        "condition": {"expression": "true"},
        "loop": {"mode": "count", "count": 2},
        "parallel": {"branches": 2},
        "wait": {"duration_seconds": 1},
        "subpipeline": {"pipeline": 1},
    }
    return {"key": key, "type": type, "config": copy.deepcopy(defaults.get(type, {})), **fields}


def edge(source: str, target: str, handle: str = "out") -> dict[str, Any]:
    return {"source": source, "source_handle": handle, "target": target}


def linear_document(n: int, name: str = "linear") -> dict[str, Any]:
    """input → clean_1 → … → clean_{n-2} → output."""
    keys = ["input"] + [f"clean_{i}" for i in range(1, n - 1)] + ["output"]
    nodes = [node("input", "input_dataset")] + [node(k) for k in keys[1:-1]] + [node("output", "output_dataset")]
    return {"name": name, "nodes": nodes, "edges": [edge(a, b) for a, b in itertools.pairwise(keys)]}


def create_pipeline(owner, document: dict[str, Any] | None = None, **overrides: Any):
    document = {**(document or example_document()), **overrides}
    return services.import_pipeline(owner=owner, document=document)


def logged_in(user, *, enforce_csrf_checks: bool = False) -> Client:
    """A browser-like client with `user`'s session."""
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(user)
    return client
