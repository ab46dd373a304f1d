"""Starting runs: parameters checked, spec frozen, node runs created, roots enqueued."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from pipelines import services
from pipelines.engine import runtime, statements
from pipelines.engine.plan import Plan, initial_states
from pipelines.engine.states import NodeState, RunState
from pipelines.graph_validation import GraphInvalid, validate_document
from pipelines.models import NodeRun, Pipeline, Run, Schedule
from pipelines.parameters import value_error


class ParamsInvalid(Exception):
    """Parameter values that do not fit the pipeline's definitions. Each error names one."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class RunConflict(Exception):
    """The run's state does not allow the action asked for (an HTTP 409)."""


def resolve_params(definitions: list[dict[str, Any]], values: dict[str, Any] | None, owner_id: int) -> dict[str, Any]:
    """Defaults applied, types checked, datasets (of `owner_id`) looked up. Raises ParamsInvalid."""
    from datasets.models import Dataset

    if values is not None and not isinstance(values, dict):
        raise ParamsInvalid([{"field": "params", "message": "must be an object of name: value"}])
    values = dict(values or {})
    errors = []
    known = {definition["name"] for definition in definitions}
    errors += [
        {"field": f"params.{name}", "message": "is not a parameter of this pipeline"}
        for name in sorted(values.keys() - known)
    ]
    resolved = {}
    for definition in definitions:
        name = definition["name"]
        value = values.get(name, definition.get("default"))
        if value is None:
            if definition.get("required"):
                errors.append({"field": f"params.{name}", "message": "is required"})
            resolved[name] = None
            continue
        problem = value_error(definition, value)
        is_dataset = problem is None and definition["type"] == "dataset"
        if is_dataset and not Dataset.objects.filter(owner_id=owner_id, name=value).exists():
            problem = f"no dataset named {value!r}"
        if problem:
            errors.append({"field": f"params.{name}", "message": problem})
        resolved[name] = value
    if errors:
        raise ParamsInvalid(errors)
    return resolved


_SPEC_CACHE_SIZE = 256
_specs: dict[tuple, dict[str, Any]] = {}


def frozen_spec(pipeline: Pipeline, version: int) -> dict[str, Any]:
    """The validated document of a version. A version never changes, so each process builds
    and validates it once. Raises GraphInvalid or NotFound."""
    key = (pipeline.pk, pipeline.created_at, version)
    spec = _specs.get(key)
    if spec is None:
        if version == pipeline.version:
            spec = services.current_document(pipeline)
        else:
            spec = services.version_document(pipeline, version)
        errors = validate_document(spec)
        if errors:
            raise GraphInvalid(errors)
        if len(_specs) >= _SPEC_CACHE_SIZE:
            _specs.pop(next(iter(_specs)))
        _specs[key] = spec
    return spec


def start_run(
    pipeline: Pipeline,
    params: dict[str, Any] | None = None,
    *,
    version: int | None = None,
    trigger: str = Run.Trigger.MANUAL,
    user=None,
    parent_node_run: NodeRun | None = None,
    reuse: Run | None = None,
    rerun_from: str = "",
    reexecute: set[str] | None = None,
    schedule: Schedule | None = None,
) -> Run:
    """Start a run of `pipeline` (latest version unless `version`). Raises ParamsInvalid,
    GraphInvalid or NotFound before anything is written.

    With `reuse`, the nodes outside `reexecute` keep that run's results (a re-run).
    """
    if reuse is not None:
        spec, version = reuse.spec, reuse.version
    else:
        version = pipeline.version if version is None else version
        spec = frozen_spec(pipeline, version)
    resolved = resolve_params(spec["parameters"], params, pipeline.owner_id)
    plan = runtime.cached_plan(pipeline, version, lambda: spec)
    now = timezone.now()
    reused: dict[str, NodeRun] = {}
    if reuse is not None:
        reused = {
            row.node_key: row
            for row in NodeRun.objects.filter(run=reuse, iteration="", state__in=NodeState.FINISHED)
            if row.node_key not in (reexecute or set()) and row.state != NodeState.CANCELLED
        }
    run = Run(
        pipeline=pipeline,
        version=version,
        spec=spec,
        params=resolved,
        trigger=trigger,
        created_by=user,
        parent_node_run=parent_node_run,
        rerun_of=reuse,
        rerun_from=rerun_from,
        schedule=schedule,
        state=RunState.RUNNING,
        started_at=now,
    )
    states = initial_states(plan, None, {key: (row.state, row.handles) for key, row in reused.items()})
    rows = [_reused_copy(run, row) for row in reused.values()] + [
        NodeRun(
            run=run,
            node_key=key,
            state=state,
            ready_at=now if state == NodeState.READY else None,
            finished_at=now if state == NodeState.SKIPPED else None,
            handles=[] if state == NodeState.SKIPPED else None,
        )
        for key, state in states.items()
    ]
    if not any(row.state in NodeState.UNFINISHED for row in rows):
        # A re-run that reuses every result: written and ended together.
        with transaction.atomic():
            statements.insert_run(run, rows)
            runtime.complete_run(run)
        return run
    statements.insert_run(run, rows)  # all or nothing, without a transaction of its own on PostgreSQL
    ready = [row.pk for row in rows if row.state == NodeState.READY]
    # No event: nobody can watch a run before it exists, and a watcher's first snapshot
    # (pipelines/consumers.py) holds the run as it started.
    transaction.on_commit(lambda: runtime.enqueue(ready, run=run))
    return run


def _reused_copy(run: Run, row: NodeRun) -> NodeRun:
    return NodeRun(
        run=run,
        node_key=row.node_key,
        state=row.state,
        output=row.output,
        handles=row.handles,
        error=row.error,
        progress=row.progress,
        records_in=row.records_in,
        records_out=row.records_out,
        started_at=row.started_at,
        finished_at=row.finished_at,
        worker=row.worker,
    )


def rerun(
    run: Run,
    *,
    from_node: str | None = None,
    params: dict[str, Any] | None = None,
    user=None,
    parent_node_run: NodeRun | None = None,
) -> Run:
    """A new run of the same version that re-executes `from_node` (default: every failed or
    cancelled node) and everything downstream of it, reusing the other nodes' results.
    Raises RunConflict while the run is still active."""
    if run.state in RunState.ACTIVE:
        raise RunConflict(f"run {run.pk} is still {run.state}; wait for it or cancel it first")
    plan = Plan.from_spec(run.spec)
    if from_node is not None:
        if from_node not in plan.nodes or plan.nodes[from_node].parent is not None:
            raise ParamsInvalid([{"field": "from_node", "message": f"no top-level node {from_node!r}"}])
        starts = {from_node}
    else:
        starts = set(
            NodeRun.objects.filter(run=run, iteration="", state__in=NodeState.RERUN_BY_DEFAULT).values_list(
                "node_key", flat=True
            )
        )
        if not starts:
            raise ParamsInvalid([{"field": "from_node", "message": "the run has no failed node; choose one"}])
    reexecute = plan.with_downstream(starts)
    return start_run(
        run.pipeline,
        run.params if params is None else {**run.params, **params},
        trigger=run.trigger,
        user=user,
        parent_node_run=parent_node_run,
        reuse=run,
        rerun_from=from_node or ",".join(sorted(starts)),
        reexecute=reexecute,
    )


def cancel(run: Run) -> None:
    """Cancel `run` and its child runs. Raises RunConflict if it has already finished, or if it
    is a sub-pipeline's child run (its parent run is the one to cancel)."""
    if run.parent_node_run_id and run.state in RunState.ACTIVE:
        parent_run = NodeRun.objects.values_list("run_id", flat=True).get(pk=run.parent_node_run_id)
        raise RunConflict(f"run {run.pk} is a sub-pipeline of run {parent_run}; cancel that run")
    if not runtime.cancel_run(run):
        run.refresh_from_db(fields=["state"])
        raise RunConflict(f"run {run.pk} already {run.state}")
