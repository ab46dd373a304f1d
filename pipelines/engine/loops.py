"""Loop containers: the body (the Loop's children) runs once per iteration.

While the body runs the Loop node run is `waiting` (no worker held) and keeps its working
state in `output` (`inputs`, `items`, `results`). Each iteration's node runs carry the
iteration path `loop:<index>`. The actor that finishes an iteration's last node moves the
Loop on; `iterations_done` makes that move happen exactly once.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from nodes.execution import NodeResult
from nodes.expressions import ExpressionError, evaluate
from pipelines.engine import runtime
from pipelines.engine.plan import Plan, PlanNode, failed_unhandled
from pipelines.engine.states import NodeState
from pipelines.models import NodeRun, Run

MAX_RESULTS = 1000


def start(run: Run, plan: Plan, node: PlanNode, node_run: NodeRun, context) -> None:
    config = context.config  # templates resolved; the while condition is evaluated per iteration
    mode = config.get("mode", "count")
    try:
        if mode == "for_each":
            items = config.get("items")
            if not isinstance(items, list):
                raise TypeError(f"items must be a list, got {type(items).__name__}")
            limit = len(items)
        else:
            items = None
            limit = int(config["count"] if mode == "count" else config["max_iterations"])
    except (KeyError, TypeError, ValueError) as exc:
        runtime.fail(run, plan, node_run, f"loop: {exc}", retry=False)
        return
    # Upstream outputs cannot change while the loop runs, so the while condition reuses them.
    state = {"inputs": context.inputs, "items": items, "limit": limit, "nodes": context.variables["nodes"]}
    state["results"] = []
    if runtime.transition(node_run, [NodeState.RUNNING], state=NodeState.WAITING, output=state, heartbeat_at=None):
        _next_or_finish(run, plan, node, node_run, 0)


def _should_run(run: Run, node: PlanNode, node_run: NodeRun, index: int) -> bool | str:
    state = node_run.output
    if index >= state["limit"]:
        return "guard" if node.config.get("mode") == "while" else False
    if node.config.get("mode") != "while":
        return True
    variables = {
        "params": run.params,
        "nodes": state["nodes"],
        "loop": {"index": index, "previous": _iteration_outputs(run, node_run, index - 1)},
    }
    return bool(evaluate(node.config["condition"], variables))


def _next_or_finish(run: Run, plan: Plan, node: PlanNode, node_run: NodeRun, index: int) -> None:
    try:
        decision = _should_run(run, node, node_run, index)
    except ExpressionError as exc:
        runtime.fail(run, plan, node_run, f"loop condition: {exc}", retry=False)
        return
    body = plan.children.get(node.key, [])
    if decision is True and body:
        path = runtime.iteration_path(node_run.iteration, node.key, index)
        roots = set(plan.roots(node.key))
        now = timezone.now()
        rows = NodeRun.objects.bulk_create(
            NodeRun(
                run_id=run.pk,
                node_key=key,
                iteration=path,
                state=NodeState.READY if key in roots else NodeState.PENDING,
                ready_at=now if key in roots else None,
            )
            for key in body
        )
        ready = [row.pk for row in rows if row.state == NodeState.READY]
        for row in rows:
            transaction.on_commit(lambda row=row: runtime.events.node_changed(row))
        transaction.on_commit(lambda: runtime.enqueue(ready, run=run))
        return
    if decision == "guard":
        runtime.write_log(node_run, f"stopped at max_iterations ({index}) with the condition still true", "warning")
    results = node_run.output.get("results", [])
    output = {"iterations": index, "results": results, "stopped_by_guard": decision == "guard"}
    runtime.succeed(run, plan, node_run, NodeResult(output=output))


def iteration_finished(run: Run, plan: Plan, path: str) -> None:
    parent_path, loop_key, index = runtime.split_iteration(path)
    node_run = NodeRun.objects.get(run_id=run.pk, node_key=loop_key, iteration=parent_path)
    if node_run.state != NodeState.WAITING or node_run.iterations_done != index:
        return
    body = list(NodeRun.objects.filter(run_id=run.pk, iteration=path))
    failures = [row for row in body if failed_unhandled(row.state, row.handles)]
    state = dict(node_run.output)
    if not failures:
        sinks = set(plan.sinks(loop_key))
        outputs = {row.node_key: row.output for row in body if row.node_key in sinks and row.output is not None}
        state["results"] = ([*state.get("results", []), outputs])[-MAX_RESULTS:]
    # The count and the results in one update: a worker dying after it loses neither.
    won = NodeRun.objects.filter(
        pk=node_run.pk, state=NodeState.WAITING, iterations_done=index, attempt=node_run.attempt
    ).update(iterations_done=index + 1, output=state)
    if not won:
        return
    node_run.iterations_done, node_run.output = index + 1, state
    if failures:
        detail = "; ".join(f"{row.node_key}: {row.error}" for row in failures)
        runtime.fail(run, plan, node_run, f"iteration {index} failed: {detail}", retry=False)
        return
    _next_or_finish(run, plan, plan.nodes[loop_key], node_run, index + 1)


def resume(run: Run, plan: Plan, node_run: NodeRun) -> None:
    """Start the iteration `iterations_done` (or finish) of a waiting Loop whose worker died
    before creating it (the sweeper's repair; see sweeper.unstall)."""
    _next_or_finish(run, plan, plan.nodes[node_run.node_key], node_run, node_run.iterations_done)


def _iteration_outputs(run: Run, loop_run: NodeRun, index: int) -> dict[str, Any]:
    if index < 0:
        return {}
    path = runtime.iteration_path(loop_run.iteration, loop_run.node_key, index)
    return dict(NodeRun.objects.filter(run_id=run.pk, iteration=path).values_list("node_key", "output"))


def loop_variables(run: Run, plan: Plan, path: str) -> dict[str, Any]:
    """`loop` as the body sees it: index, item, the previous iteration's outputs, and the
    Loop's own inputs (handed to the first nodes of the body)."""
    parent_path, loop_key, index = runtime.split_iteration(path)
    loop_run = NodeRun.objects.get(run_id=run.pk, node_key=loop_key, iteration=parent_path)
    state = loop_run.output or {}
    items = state.get("items")
    return {
        "index": index,
        "item": items[index] if items and index < len(items) else None,
        "previous": _iteration_outputs(run, loop_run, index - 1),
        "inputs": state.get("inputs", {}),
    }
