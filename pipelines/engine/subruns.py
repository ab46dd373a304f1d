"""Sub-pipeline nodes: another pipeline runs as a child run; its outputs become the node's."""

from __future__ import annotations

from nodes.execution import ChildRunRequest, NodeResult
from pipelines.engine import runtime
from pipelines.engine.states import NodeState, RunState
from pipelines.models import NodeRun, Pipeline, Run

MAX_DEPTH = 10


def _depth(run: Run) -> int:
    depth = 0
    while run.parent_node_run_id:
        run = run.parent_node_run.run
        depth += 1
    return depth


def start_child(run: Run, node_run: NodeRun, request: ChildRunRequest) -> None:
    from pipelines.engine.runs import ParamsInvalid, rerun, start_run
    from pipelines.graph_validation import GraphInvalid
    from pipelines.services import NotFound

    plan = runtime.plan_for(run)
    owner = run.pipeline.owner
    pipeline = Pipeline.objects.filter(pk=request.pipeline_id).first()
    if pipeline is None or not (pipeline.owner_id == owner.pk or owner.is_staff):
        runtime.fail(run, plan, node_run, f"pipeline {request.pipeline_id} does not exist", retry=False)
        return
    if _depth(run) >= MAX_DEPTH:
        runtime.fail(run, plan, node_run, f"sub-pipelines nested deeper than {MAX_DEPTH}", retry=False)
        return
    if not runtime.transition(node_run, [NodeState.RUNNING], state=NodeState.WAITING, heartbeat_at=None):
        return
    try:
        previous = _previous_child(run, node_run)
        if previous is not None:
            # A re-run reaches into the child: it re-runs from the child's failed nodes.
            child = rerun(previous, params=request.params, user=run.created_by, parent_node_run=node_run)
        else:
            child = start_run(
                pipeline,
                request.params,
                version=request.version,
                trigger=Run.Trigger.SUBPIPELINE,
                user=run.created_by,
                parent_node_run=node_run,
            )
    except (ParamsInvalid, GraphInvalid, NotFound) as exc:
        runtime.fail(run, plan, node_run, f"child run not started: {exc}", retry=False)
        return
    runtime.write_log(node_run, f"started child run {child.pk} of pipeline {pipeline.pk} v{child.version}")


def _previous_child(run: Run, node_run: NodeRun) -> Run | None:
    """In a re-run, the child run this node started in the original run, if it did not succeed."""
    if not run.rerun_of_id:
        return None
    return (
        Run.objects.filter(
            parent_node_run__run_id=run.rerun_of_id,
            parent_node_run__node_key=node_run.node_key,
            parent_node_run__iteration=node_run.iteration,
        )
        .exclude(state=RunState.SUCCEEDED)
        .order_by("-pk")
        .first()
    )


def child_finished(child: Run) -> None:
    node_run = NodeRun.objects.select_related("run").get(pk=child.parent_node_run_id)
    run = node_run.run
    plan = runtime.plan_for(run)
    if child.state == RunState.SUCCEEDED:
        child_plan = runtime.plan_for(child)
        sinks = child_plan.sinks(None)
        outputs = dict(
            NodeRun.objects.filter(run_id=child.pk, iteration="", node_key__in=sinks).values_list("node_key", "output")
        )
        runtime.succeed(run, plan, node_run, NodeResult(output={"run": child.pk, "outputs": outputs}))
    elif child.state == RunState.FAILED:
        runtime.fail(run, plan, node_run, f"child run {child.pk} failed: {child.error}")
    else:
        runtime.fail(run, plan, node_run, f"child run {child.pk} was cancelled", retry=False)
