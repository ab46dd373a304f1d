"""Test one node on a worker, without a Run.

The web side (`run_node_test`) checks the request the way a run would (the node's config
against its type, parameters with defaults applied), gathers the node's inputs (given, or
the upstream outputs of the pipeline's latest finished run), and sends everything the worker
needs in one Celery message. The worker (`execute_payload`) resolves the config in the same
sandbox as the engine, runs the type's executor against a lightweight context that keeps
log lines in memory, stores the result in Redis under the request's id and rings a doorbell
list. The web side waits on the doorbell for a short while; a test that takes longer is
fetched later by its id (`test_status`), so no server thread is held for a long test.
Nothing is written to the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
import re
import time
from typing import Any
import uuid

from nodes import registry
from nodes.execution import NodeFailed
from nodes.expressions import ExpressionError
from pipelines import services
from pipelines.engine import events
from pipelines.engine.plan import Plan, edge_state
from pipelines.engine.runs import ParamsInvalid, resolve_params
from pipelines.engine.states import RunState
from pipelines.graph_validation import GraphError, GraphInvalid, validate_document
from pipelines.models import NodeRun, Pipeline, Run

RESULT_TTL_SECONDS = 120
#: Extra wait after the deadline, for the worker's answer that the node timed out.
ANSWER_GRACE_SECONDS = 2.0
MAX_LOG_LINES = 1000
MAX_LOG_MESSAGE = 10000


class NodeNotTestable(ParamsInvalid):
    """The node cannot run on its own (a container, a timer, a child run). Names `key`."""

    def __init__(self, message: str):
        super().__init__([{"field": "key", "message": message}])


def request_key(request_id: str) -> str:
    return f"datamate:node-test:{request_id}:request"


def result_key(request_id: str) -> str:
    return f"datamate:node-test:{request_id}:result"


def doorbell_key(request_id: str) -> str:
    return f"datamate:node-test:{request_id}:done"


# --- web side -----------------------------------------------------------------------


def run_node_test(
    pipeline: Pipeline,
    key: str,
    *,
    inputs: dict[str, dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    loop: dict[str, Any] | None = None,
    timeout: float = 30.0,
    wait: float | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """Send node `key` of the pipeline's latest saved graph to a worker and wait up to `wait`
    seconds (default: until its timeout) for the result. Returns (request id, result or None);
    a result that comes later is read with `test_status`.

    Raises services.NotFound (no such node), NodeNotTestable, GraphInvalid (the node's
    config is invalid) or ParamsInvalid, before anything is sent to a worker."""
    payload = prepare(pipeline, key, inputs=inputs, params=params, config=config, loop=loop, timeout=timeout)
    request_id = payload["request_id"]
    request = {
        "pipeline": pipeline.pk,
        "timeout": timeout,
        "deadline": payload["deadline"],
        "inputs_from_run": payload["inputs_from_run"],
    }
    ttl = math.ceil(timeout + ANSWER_GRACE_SECONDS + RESULT_TTL_SECONDS)
    events.redis_client().set(request_key(request_id), json.dumps(request), ex=ttl)
    from pipelines.tasks import node_test

    node_test.apply_async((payload,), expires=timeout)
    full_wait = timeout + ANSWER_GRACE_SECONDS
    if not wait_for_result(request_id, full_wait if wait is None else min(wait, full_wait)):
        return request_id, None
    return request_id, test_status(request_id)[2]


def test_status(request_id: str) -> tuple[str, int | None, dict[str, Any] | None]:
    """(state, pipeline id, answer) of a test request. State is `unknown` (never sent, or
    expired), `pending`, `lost` (no worker answered before its deadline: the answer says so)
    or `done` (the answer is the result)."""
    client = events.redis_client()
    request, result = client.mget([request_key(request_id), result_key(request_id)])
    if request is None:
        return "unknown", None, None
    request = json.loads(request)
    if result is not None:
        return "done", request["pipeline"], {**json.loads(result), "inputs_from_run": request["inputs_from_run"]}
    if time.time() > request["deadline"] + ANSWER_GRACE_SECONDS:
        return "lost", request["pipeline"], {"detail": f"no worker answered within {request['timeout']:g} s"}
    return "pending", request["pipeline"], None


def prepare(
    pipeline: Pipeline,
    key: str,
    *,
    inputs: dict[str, dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    loop: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """The worker's message: the node, its resolved parameters, inputs and variables."""
    document = services.current_document(pipeline)
    node = next((n for n in document["nodes"] if n["key"] == key), None)
    if node is None:
        raise services.NotFound(f"pipeline {pipeline.pk} has no node {key!r}")
    try:
        node_type = registry.get(node["type"])
    except registry.UnknownNodeType:
        raise NodeNotTestable(f"unknown node type {node['type']!r}") from None
    if node_type.not_standalone:
        raise NodeNotTestable(f"{node_type.not_standalone}; it cannot be tested alone")
    if config is not None:
        node["config"] = config
    _check_node(document, key)
    resolved = resolve_params(document["parameters"], params, pipeline.owner_id)

    plan_node = Plan.from_spec({"nodes": [node], "edges": []}).nodes[key]
    incoming = [(e["source"], e["source_handle"]) for e in document["edges"] if e["target"] == key]
    if not incoming and node.get("parent"):
        # A first node of a Loop body gets the Loop's own inputs, as in a run.
        incoming = [(e["source"], e["source_handle"]) for e in document["edges"] if e["target"] == node["parent"]]
    wanted = {source for source, _ in incoming} | set(plan_node.referenced_nodes)

    latest = None
    rows: dict[str, tuple[str, Any, Any]] = {}
    if wanted and (inputs is None or plan_node.referenced_nodes - set(inputs)):
        latest = Run.objects.filter(pipeline=pipeline, state__in=RunState.FINISHED).order_by("-id").only("pk").first()
        if latest is not None:
            rows = {
                node_key: (state, handles, output)
                for node_key, state, handles, output in NodeRun.objects.filter(
                    run=latest, iteration="", node_key__in=wanted
                ).values_list("node_key", "state", "handles", "output")
            }
    inputs_from_run = None
    if inputs is not None:
        _check_inputs_owned(inputs, pipeline.owner_id)
    if inputs is None:
        inputs = {}
        for source, handle in incoming:
            row = rows.get(source)
            if row and edge_state(row[0], row[1], handle):
                inputs[source] = row[2] or {}
        inputs_from_run = latest.pk if latest is not None and inputs else None
    nodes = {node_key: {"output": row[2] or {}, "state": row[0]} for node_key, row in rows.items()}
    nodes.update({node_key: {"output": output, "state": "succeeded"} for node_key, output in inputs.items()})
    if node.get("parent"):
        loop = {"index": 0, "item": None, "previous": {}, **(loop or {})}
    timeouts = [timeout, node.get("settings", {}).get("timeout_seconds")]
    return {
        "request_id": uuid.uuid4().hex,
        "pipeline": pipeline.pk,
        "key": key,
        "type": node["type"],
        "config": node["config"],
        "params": resolved,
        "inputs": inputs,
        "nodes": nodes,
        "loop": loop,
        "owner_id": pipeline.owner_id,
        "time_limit": min(t for t in timeouts if t),
        # Wall clock: the worker may be another machine, and must not start a stale request.
        "deadline": time.time() + timeout,
        "inputs_from_run": inputs_from_run,
    }


_OWNED_PART = re.compile(
    r"(datasets/(?P<dataset>\d+)|artifacts/run-(?P<run>\d+)|artifacts/node-tests/owner-(?P<owner>\d+))/"
)


def _check_inputs_owned(inputs: dict[str, Any], owner_id: int) -> None:
    """Given inputs may name record parts (a data node's output manifest): only parts of the
    owner's datasets, runs and node tests, or a test could read another user's records."""
    from datasets.models import Dataset

    named: dict[str, list[Any]] = {}
    for source, output in inputs.items():
        manifest = output.get("manifest") if isinstance(output, dict) else None
        parts = manifest.get("parts") if isinstance(manifest, dict) else None
        parts = parts if isinstance(parts, list) else []
        named[source] = [part.get("name") if isinstance(part, dict) else part for part in parts]
    matches = {
        name: _OWNED_PART.match(name) if ".." not in name else None
        for names in named.values()
        for name in names
        if isinstance(name, str)
    }
    found = [match for match in matches.values() if match]
    datasets = {int(m["dataset"]) for m in found if m["dataset"]}
    runs = {int(m["run"]) for m in found if m["run"]}
    # One query each, whatever the number of parts.
    datasets &= set(Dataset.objects.filter(pk__in=datasets, owner_id=owner_id).values_list("pk", flat=True))
    runs &= set(Run.objects.filter(pk__in=runs, pipeline__owner_id=owner_id).values_list("pk", flat=True))

    def owned(name: Any) -> bool:
        match = matches[name] if isinstance(name, str) else None
        if match is None:
            return False
        if match["dataset"]:
            return int(match["dataset"]) in datasets
        if match["run"]:
            return int(match["run"]) in runs
        return int(match["owner"]) == owner_id

    errors = []
    for source, names in named.items():
        foreign = [name for name in names if not owned(name)]
        if foreign:
            errors.append({"field": f"inputs.{source}", "message": f"no record part {foreign[0]!r} of yours"})
    if errors:
        raise ParamsInvalid(errors)


def _check_node(document: dict[str, Any], key: str) -> None:
    """The node's own config and settings, checked as the graph validator would check them.
    Errors elsewhere in the graph do not stop a test (the designer may be mid-edit)."""
    index = next(i for i, n in enumerate(document["nodes"]) if n["key"] == key)
    prefix = f"nodes[{index}]."
    errors = [
        GraphError(error.field.removeprefix(prefix), error.message, key)
        for error in validate_document(document)
        if error.node == key
        and error.field.startswith(prefix)
        and error.field.removeprefix(prefix).split(".")[0].split("[")[0] in ("config", "settings")
    ]
    if errors:
        raise GraphInvalid(errors)


def wait_for_result(request_id: str, seconds: float) -> bool:
    """Wait up to `seconds` for the worker's doorbell; True once the result is stored."""
    client = events.redis_client()
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        # BLPOP takes fractions of a second from Redis 6 on; 0 would mean "forever".
        if client.blpop([doorbell_key(request_id)], timeout=max(0.01, min(5.0, remaining))) is not None:
            return True
    return client.exists(result_key(request_id)) > 0


# --- worker side --------------------------------------------------------------------


@dataclass
class NodeTestContext:
    """An ExecutionContext for one test execution: logs kept in memory, progress not stored."""

    node_key: str
    config: dict[str, Any]
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    loop: dict[str, Any] | None
    owner_id: int
    run_id: int = 0
    attempt: int = 1
    logs: list[dict[str, Any]] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic, repr=False)

    def log(self, message: str, level: str = "info") -> None:
        if len(self.logs) < MAX_LOG_LINES:
            self.logs.append(
                {
                    "level": level,
                    "message": str(message)[:MAX_LOG_MESSAGE],
                    "seconds": round(time.monotonic() - self._started, 3),
                }
            )

    def progress(
        self, fraction: float | None = None, *, records_in: int | None = None, records_out: int | None = None
    ) -> None:
        from pipelines.engine.execution import check_deadline

        check_deadline()


def execute_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Run the node of a `prepare`d payload here and return what the web side shows."""
    from pipelines.engine.execution import NodeTimedOut, time_limit

    started = time.monotonic()
    answer: dict[str, Any] = {
        "output": None,
        "handles": None,
        "records_in": None,
        "records_out": None,
        "logs": [],
        "error": None,
    }
    context = None
    limit = min(float(payload["time_limit"]), payload["deadline"] - time.time())
    try:
        if limit <= 0:
            raise NodeTimedOut()
        node_type = registry.get(payload["type"])
        variables = {"params": payload["params"], "nodes": payload["nodes"], "loop": payload["loop"] or {}}
        try:
            config = node_type.resolve_config(payload["config"], variables)
        except ExpressionError as exc:
            raise ExpressionError(f"config: {exc}") from None
        context = NodeTestContext(
            node_key=payload["key"],
            config=config,
            params=payload["params"],
            inputs=payload["inputs"],
            loop=payload["loop"],
            owner_id=payload["owner_id"],
        )
        with time_limit(limit):
            result = node_type.execute(context)
        if result.wait_until is not None or result.child_run is not None:
            raise NodeFailed("the node asked to wait or to start a child run; it cannot be tested alone")
        answer.update(
            output=result.output,
            handles=result.handles,
            records_in=result.records_in,
            records_out=result.records_out,
        )
    except NodeTimedOut:
        configured = float(payload["time_limit"])
        if limit >= configured - 0.5:
            answer["error"] = f"timed out after {configured:g} s"
        else:  # the request waited in the queue before a worker took it
            left = max(limit, 0)
            answer["error"] = f"timed out: {left:.1f} s of the {configured:g} s were left when a worker took it"
    except (NodeFailed, ExpressionError) as exc:
        answer["error"] = str(exc)
    except Exception as exc:  # an executor's bug is the test's answer, not the worker's crash
        answer["error"] = f"{type(exc).__name__}: {exc}"
    if context is not None:
        answer["logs"] = context.logs
    answer["duration_ms"] = round((time.monotonic() - started) * 1000)
    return answer


def execute_and_store(payload: dict[str, Any]) -> None:
    """The Celery task's body: run the node, store the answer, ring the waiting request."""
    answer = execute_payload(payload)
    request_id = payload["request_id"]
    with events.redis_client().pipeline() as pipe:
        pipe.set(result_key(request_id), json.dumps(answer, default=str), ex=RESULT_TTL_SECONDS)
        pipe.rpush(doorbell_key(request_id), 1)
        pipe.expire(doorbell_key(request_id), RESULT_TTL_SECONDS)
        pipe.execute()
