"""A corpus of malformed pipeline documents, each sent to import (create) and to PUT graph
(update): every one is a 400 (413 for a body over the upload limit) naming the field, within
a bounded time, and writes nothing: no new pipeline, version, node or edge row, and the
updated pipeline keeps its version and document.
"""

from __future__ import annotations

import json
import time

from django.conf import settings
import pytest

from pipelines import services
from pipelines.models import Edge, Node, Pipeline, PipelineVersion, Schedule
from tests.factories import edge, linear_document, node

# Generous: a shared 2-core CI machine; the point is "bounded", not "fast".
DEADLINE_SECONDS = 5.0


def _doc(**fields) -> dict:
    return {"name": "malformed", **fields}


def _raw(document) -> bytes:
    return json.dumps(document, ensure_ascii=False, allow_nan=True).encode()


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _with_config(config_text: str) -> bytes:
    return (
        '{"name": "deep", "nodes": [{"key": "a", "type": "data_cleaning", "config": ' + config_text + "}]}"
    ).encode()


def _many_nodes(n: int) -> dict:
    return _doc(nodes=[node(f"n{i}", "wait") for i in range(n)])


def _many_edges(n: int) -> bytes:
    # Compact, so the body stays under the upload limit and reaches the validator.
    document = _doc(nodes=[node("a", "wait"), node("b", "wait")], edges=[{"source": "a", "target": "b"}] * n)
    return json.dumps(document, separators=(",", ":")).encode()


_TWO = [node("a", "data_cleaning"), node("b", "data_cleaning")]

# (name, body, field the answer must name). A body is a document (sent as JSON) or raw bytes.
CORPUS: list[tuple[str, object, str]] = [
    # wrong types at every level
    ("document is a list", [], "document"),
    ("document is a string", "pipeline", "document"),
    ("document is null", None, "document"),
    ("name is a number", {"name": 5}, "name"),
    ("name missing", {"nodes": []}, "name"),
    ("name empty", {"name": ""}, "name"),
    ("unknown top-level field", _doc(colour="red"), "colour"),
    ("nodes is an object", _doc(nodes={}), "nodes"),
    ("node is a string", _doc(nodes=["a"]), "nodes[0]"),
    ("node key missing", _doc(nodes=[{"type": "wait"}]), "nodes[0].key"),
    ("node key is a number", _doc(nodes=[{"key": 1, "type": "wait"}]), "nodes[0].key"),
    ("node type is null", _doc(nodes=[{"key": "a", "type": None}]), "nodes[0].type"),
    ("config is a list", _doc(nodes=[{"key": "a", "type": "wait", "config": []}]), "nodes[0].config"),
    ("position.x is a string", _doc(nodes=[node("a", "wait", position={"x": "1", "y": 0})]), "nodes[0].position.x"),
    ("settings of the wrong type", _doc(nodes=[node("a", "wait", settings=[])]), "nodes[0].settings"),
    ("edges is a string", _doc(edges="a->b"), "edges"),
    ("edge source is a number", _doc(nodes=_TWO, edges=[{"source": 1, "target": "b"}]), "edges[0].source"),
    ("edge target missing", _doc(nodes=_TWO, edges=[{"source": "a"}]), "edges[0].target"),
    ("parameters is an object", _doc(parameters={"n": 1}), "parameters"),
    ("parameter type unknown", _doc(parameters=[{"name": "n", "type": "complex"}]), "parameters[0].type"),
    (
        "parameter default of the wrong type",
        _doc(parameters=[{"name": "n", "type": "integer", "default": "ten"}]),
        "parameters[0].default",
    ),
    (
        "wait duration is a string",
        _doc(nodes=[node("a", "wait", config={"duration_seconds": "1s"})]),
        "nodes[0].config.duration_seconds",
    ),
    # huge
    ("name of 1 MB", _doc(name="x" * 1_000_000), "name"),
    ("notes of 4 MB", _doc(nodes=[node("a", "wait", notes="n" * 4_000_000)]), "nodes[0].notes"),
    ("10,000 nodes", _many_nodes(10_000), "nodes"),
    ("100,000 edges", _many_edges(100_000), "edges"),
    ("1,000 parameters", _doc(parameters=[{"name": f"p{i}", "type": "string"} for i in range(1000)]), "parameters"),
    # deeply nested JSON: the parser or validator must not turn RecursionError into a 500
    ("config nested 10,000 levels", _with_config(_nested(10_000)), "document"),
    ("config nested 500 levels", _with_config(_nested(500)), "nodes[0].config.a"),
    ("list nested 100,000 levels", b"[" * 100_000 + b"]" * 100_000, "document"),
    # graph rules
    ("cycle of two", _doc(nodes=_TWO, edges=[edge("a", "b"), edge("b", "a")]), "edges"),
    (
        "cycle of 500",
        _doc(
            nodes=[node(f"n{i}", "wait") for i in range(500)],
            edges=[edge(f"n{i}", f"n{(i + 1) % 500}") for i in range(500)],
        ),
        "edges",
    ),
    ("self-loop", _doc(nodes=[node("a", "wait")], edges=[edge("a", "a")]), "edges[0]"),
    ("unknown node type", _doc(nodes=[node("a", "rm_rf")]), "nodes[0].type"),
    ("unknown source handle", _doc(nodes=_TWO, edges=[edge("a", "b", handle="sideways")]), "edges[0].source_handle"),
    ("edge to a missing node", _doc(nodes=_TWO[:1], edges=[edge("a", "ghost")]), "edges[0].target"),
    ("duplicate node keys", _doc(nodes=[node("a", "wait"), node("a", "wait")]), "key"),
    ("duplicate edge", _doc(nodes=_TWO, edges=[edge("a", "b"), edge("a", "b")]), "edges[1]"),
    ("parent is not a container", _doc(nodes=[node("a", "wait"), node("b", "wait", parent="a")]), "nodes[1].parent"),
    ("parent is missing", _doc(nodes=[node("a", "wait", parent="ghost")]), "nodes[0].parent"),
    (
        "template names an unknown node",
        _doc(nodes=[node("a", "data_synthesis", config={"prompt_template": "{{ nodes.ghost.output }}"})]),
        "nodes[0].config.prompt_template",
    ),
    (
        "expression does not parse",
        _doc(nodes=[node("a", "condition", config={"expression": "1 +* 2"})]),
        "nodes[0].config.expression",
    ),
    # duplicate JSON keys: the last one wins, and it is checked like any other value
    ("duplicate JSON key, last is wrong", b'{"name": "ok", "nodes": [], "nodes": 5}', "nodes"),
    # unicode
    ("zero-width node key", _doc(nodes=[node("a\u200b", "wait")]), "nodes[0].key"),
    ("right-to-left override key", _doc(nodes=[node("\u202eab", "wait")]), "nodes[0].key"),
    ("non-ASCII node key", _doc(nodes=[node("ключ", "wait")]), "nodes[0].key"),
    ("emoji top-level field", _doc(**{"\U0001f4a5": 1}), "\U0001f4a5"),
    ("zero-width top-level field", _doc(**{"name\u200b": "x"}), "name\u200b"),
    # numbers JSON cannot store, and bytes that are not text
    ("NaN coordinate", _raw(_doc(nodes=[node("a", "wait", position={"x": float("nan"), "y": 0})])), "document"),
    ("Infinity coordinate", _raw(_doc(nodes=[node("a", "wait", position={"x": float("inf"), "y": 0})])), "document"),
    (
        "1e400 coordinate",
        b'{"name": "x", "nodes": [{"key": "a", "type": "wait", "position": {"x": 1e400, "y": 0}}]}',
        "nodes[0].position.x",
    ),
    ("null byte in a key", _doc(nodes=[node("a\x00b", "wait")]), "nodes[0].key"),
    ("null byte in the name", _doc(name="evil\x00name"), "name"),
    (
        "null byte in a config value",
        _doc(nodes=[node("a", "data_synthesis", config={"prompt_template": "\x00"})]),
        "nodes[0].config.prompt_template",
    ),
    ("null byte in a config key", _doc(nodes=[node("a", "wait", config={"\x00": 1})]), "nodes[0].config"),
    ("invalid UTF-8", b'{"name": "\xff\xfe"}', "document"),
    ("not JSON at all", b"name: yaml?", "document"),
    ("truncated JSON", b'{"name": "x", "nodes": [', "document"),
]


def _names(body: object, field: str) -> bool:
    """Whether the answer names `field` (or a field inside it, e.g. nodes[0].config.a.a)."""
    return any(name == field or name.startswith((f"{field}.", f"{field}[")) for name in _field_names(body))


def _field_names(body: object) -> set[str]:
    """The fields a 400 names, whatever shape it has: our {"errors": [{field}]}, DRF's
    {"field": [...]}, or a body-level {"detail": ...} (the document as a whole)."""
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return {error["field"] for error in body["errors"]}
    if isinstance(body, dict) and set(body) == {"detail"}:
        return {"document"}
    return set(body) if isinstance(body, dict) else set()


def _send(client, method: str, url: str, body: object):
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return client.generic(method, url, data=data, content_type="application/json")


@pytest.fixture
def existing(alice):
    return services.import_pipeline(owner=alice, document=linear_document(4, name="existing"))


def _rows() -> tuple[int, int, int, int]:
    return (Pipeline.objects.count(), PipelineVersion.objects.count(), Node.objects.count(), Edge.objects.count())


def test_malformed_documents_are_refused_naming_the_field(alice_api, existing):
    """Table-driven in one test (one user and pipeline for the whole corpus, to keep it fast);
    every case is checked and every failure is reported by its name."""
    names = [name for name, _, _ in CORPUS]
    assert len(names) >= 30 and len(set(names)) == len(names)
    before_rows = _rows()
    before_document = services.current_document(existing)
    failures, slowest = [], (0.0, "")
    for name, body, field in CORPUS:
        for method, url in (("POST", "/api/pipelines/import/"), ("PUT", f"/api/pipelines/{existing.pk}/graph/")):
            started = time.monotonic()
            response = _send(alice_api, method, url, body)
            elapsed = time.monotonic() - started
            slowest = max(slowest, (elapsed, f"{method} {name}"))
            if response.status_code != 400 or not _names(response.json(), field):
                failures.append(f"{method} {name}: {response.status_code} {response.content[:300]!r}")
            elif elapsed >= DEADLINE_SECONDS:
                failures.append(f"{method} {name}: took {elapsed:.2f} s")
        if _rows() != before_rows:
            failures.append(f"{name}: rows written {before_rows} → {_rows()}")
            before_rows = _rows()
    existing.refresh_from_db()
    assert existing.version == 1 and services.current_document(existing) == before_document
    print(f"\n{len(CORPUS)} malformed documents, 2 endpoints each; slowest {slowest[1]}: {slowest[0]:.2f} s")
    assert not failures, "\n".join(failures)


def test_body_over_the_upload_limit_is_a_clear_413(alice_api, existing):
    """20 MB (four times DATA_UPLOAD_MAX_MEMORY_SIZE): refused before parsing, not a 500."""
    body = _raw(_doc(description="d" * 20_000_000))
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    before_rows = _rows()
    for method, url in (("POST", "/api/pipelines/import/"), ("PUT", f"/api/pipelines/{existing.pk}/graph/")):
        started = time.monotonic()
        response = _send(alice_api, method, url, body)
        assert response.status_code == 413, (method, response.status_code, response.content[:300])
        assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes" in response.json()["detail"]
        assert time.monotonic() - started < DEADLINE_SECONDS
    assert _rows() == before_rows


SCHEDULE_CORPUS = [
    ("cron of words", {"cron": "every night"}, "cron"),
    ("cron with 8 fields", {"cron": "0 0 2 * * ? 2027 1"}, "cron"),
    ("cron minute 61", {"cron": "61 2 * * *"}, "cron"),
    ("cron is a number", {"cron": 5}, "cron"),
    ("cron with a null byte", {"cron": "0 2 * * *\x00"}, "cron"),
    ("cron of 10,000 characters", {"cron": "* " * 5000}, "cron"),
    ("unknown time zone", {"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ("params is a list", {"cron": "0 2 * * *", "params": [1]}, "params"),
    ("overlap unknown", {"cron": "0 2 * * *", "overlap": "sometimes"}, "overlap"),
    ("version is a string", {"cron": "0 2 * * *", "version": "latest"}, "version"),
]


def test_malformed_schedules_are_refused_naming_the_field(alice_api, existing):
    failures = []
    for name, body, field in SCHEDULE_CORPUS:
        started = time.monotonic()
        response = _send(alice_api, "POST", f"/api/pipelines/{existing.pk}/schedules/", body)
        elapsed = time.monotonic() - started
        if response.status_code != 400 or not _names(response.json(), field) or elapsed >= DEADLINE_SECONDS:
            failures.append(f"{name}: {response.status_code} in {elapsed:.2f} s: {response.content[:300]!r}")
    assert not failures, "\n".join(failures)
    assert not Schedule.objects.exists()
