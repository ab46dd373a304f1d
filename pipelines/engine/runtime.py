"""The engine's moves, over the database. The database is the truth; Celery is a doorbell.

Every node-run transition is one conditional UPDATE (`transition`): it names the states it
may leave, so of two actors racing for the same move exactly one wins and the other does
nothing. Decisions about what runs next are made *after* the deciding actor's own change is
committed, so of two nodes finishing together at least one sees both finished (and the
conditional update lets only one of them start the join).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from datetime import datetime, timedelta
import logging
import os
import socket
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import BatchPublishError

from nodes.execution import NodeResult
from pipelines.engine import events, statements
from pipelines.engine.plan import READY, SKIP, WAIT, Plan, PlanNode, decide, failed_unhandled
from pipelines.engine.states import NodeState, RunState
from pipelines.models import NodeRun, NodeRunLog, Pipeline, Run

logger = logging.getLogger(__name__)

_PLAN_CACHE_SIZE = 256
_plans: dict[tuple, Plan] = {}


def cached_plan(pipeline, version: int, load_spec) -> Plan:
    """The Plan of a pipeline version, built once per process: a version never changes.
    (The creation time guards against a reused id, as after a rolled-back transaction.)"""
    key = (pipeline.pk, pipeline.created_at, version)
    plan = _plans.get(key)
    if plan is None:
        if len(_plans) >= _PLAN_CACHE_SIZE:
            _plans.pop(next(iter(_plans)))
        plan = _plans[key] = Plan.from_spec(load_spec())
    return plan


_runs: dict[int, Run] = {}

#: What a worker relies on of a run, none of which ever changes. Tasks carry them (see
#: `enqueue`), so the worker taking a run's first node need not read the run; the rest of a
#: run (its state, its spec) is read from the database when used, as a deferred field is.
_RUN_FIELDS = (
    "id", "pipeline_id", "version", "params", "trigger", "created_by_id", "parent_node_run_id",
    "rerun_of_id", "rerun_from", "schedule_id", "created_at", "started_at",
)  # fmt: skip
_PIPELINE_FIELDS = ("id", "owner_id", "created_at")


def run_message(run: Run) -> dict[str, Any]:
    """The immutable part of a run and its pipeline, as a task message carries it (JSON)."""
    return {"run": _message_fields(run, _RUN_FIELDS), "pipeline": _message_fields(run.pipeline, _PIPELINE_FIELDS)}


def _message_fields(instance, names: tuple[str, ...]) -> dict[str, Any]:
    values = {name: getattr(instance, name) for name in names}
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in values.items()}


def _run_from_message(message: dict[str, Any]) -> Run:
    """A Run (and its Pipeline) holding the message's fields; any other field is deferred."""
    run = _partial(Run, message["run"])
    run.pipeline = _partial(Pipeline, message["pipeline"])
    return run


def _partial(model, values: dict[str, Any]):
    fields = [f for f in model._meta.concrete_fields if f.attname in values]  # from_db wants model order
    return model.from_db("default", [f.attname for f in fields], [f.to_python(values[f.attname]) for f in fields])


def run_for(run_id: int, message: dict[str, Any] | None = None) -> Run:
    """A run with its pipeline, read once per process (or taken from a task's `message`).
    Only immutable fields are relied on (params, version, pipeline, parents); states are
    always re-checked in the database."""
    run = _runs.get(run_id)
    if run is None:
        if len(_runs) >= _PLAN_CACHE_SIZE:
            _runs.pop(next(iter(_runs)))
        if message is not None and message["run"]["id"] == run_id:
            run = _run_from_message(message)
        else:
            run = statements.read_run(run_id)
        _runs[run_id] = run
    return run


def plan_for(run: Run) -> Plan:
    """The run's frozen spec as a Plan. The spec is read only if this process lacks the plan."""
    return cached_plan(run.pipeline, run.version, lambda: run.spec)


# --- iteration paths ----------------------------------------------------------------


def iteration_path(parent_path: str, loop_key: str, index: int) -> str:
    segment = f"{loop_key}:{index}"
    return f"{parent_path}/{segment}" if parent_path else segment


def split_iteration(path: str) -> tuple[str, str, int]:
    """'outer:0/inner:2' -> ('outer:0', 'inner', 2): enclosing path, loop key, index."""
    parent, _, segment = path.rpartition("/")
    loop_key, _, index = segment.rpartition(":")
    return parent, loop_key, int(index)


# --- transitions --------------------------------------------------------------------


def transition(node_run: NodeRun, leaving: Iterable[str], **changes: Any) -> bool:
    """Move a node run out of one of the `leaving` states, if it is still there (and still on
    the same attempt). Returns whether this caller won; the winner publishes the change."""
    won = statements.update_node_run(node_run.pk, node_run.attempt, list(leaving), changes)
    if won:
        _moved(node_run, changes)
    return won


def _moved(node_run: NodeRun, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(node_run, name, value)
    transaction.on_commit(lambda: events.node_changed(node_run))


def progress_changes(fraction: float | None, records_in: int | None, records_out: int | None) -> dict[str, Any]:
    """The columns a progress report writes (node runs and shards alike), with a fresh heartbeat."""
    changes: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if fraction is not None:
        changes["progress"] = max(0.0, min(1.0, float(fraction)))
    if records_in is not None:
        changes["records_in"] = records_in
    if records_out is not None:
        changes["records_out"] = records_out
    return changes


def write_log(node_run: NodeRun, message: str, level: str = "info") -> None:
    log = NodeRunLog.objects.create(node_run=node_run, level=level, message=message[:10000])
    transaction.on_commit(lambda: events.log_written(log, node_run))


def enqueue(node_run_ids: Iterable[int], countdown: float | None = None, run: Run | None = None) -> None:
    """Send the node runs to the workers; with their `run`, the messages carry what a worker
    needs of it (see run_for). Several messages go to Redis in one round trip (kombu's publish
    batch); should that fail, each is sent again with Celery's retries: a duplicate claims nothing."""
    from pipelines.tasks import execute_node

    ids = list(node_run_ids)
    args = () if run is None else (run_message(run),)

    def send(node_run_id: int, producer) -> None:
        execute_node.apply_async(
            (node_run_id, *args),
            countdown=countdown,
            task_id=task_id(node_run_id),
            argsrepr=f"({node_run_id},)",  # Celery's repr of the run part cost more than the send
            producer=producer,
        )

    with execute_node.app.producer_or_acquire() as producer:
        if len(ids) > 1:
            try:
                with producer.batch():
                    for node_run_id in ids:
                        send(node_run_id, producer)
                return
            except BatchPublishError:
                logger.warning("a batch of %d node runs may not have been sent; sending each again", len(ids))
        for node_run_id in ids:
            send(node_run_id, producer)


# --- advancing ----------------------------------------------------------------------


class Handoff:
    """Set by a worker while it executes: `advance` leaves here one node run it claimed for
    that worker to run next, with the rows it read (see execution.execute)."""

    def __init__(self):
        self._next: tuple[NodeRun, dict[str, NodeRun]] | None = None

    def offer(self, node_run: NodeRun, rows: dict[str, NodeRun]) -> None:
        assert self._next is None, "one node run is handed off at a time"
        self._next = (node_run, rows)

    @property
    def free(self) -> bool:
        return self._next is None

    def take(self) -> tuple[NodeRun | None, dict[str, NodeRun] | None]:
        taken, self._next = self._next, None
        return taken if taken is not None else (None, None)


handoff: ContextVar[Handoff | None] = ContextVar("handoff", default=None)


_SCOPE_CACHE_SIZE = 1024
_scope_ids: dict[tuple[int, str], dict[str, int]] = {}


def scope_ids(run: Run, iteration: str) -> dict[str, int]:
    """Node-run ids of one scope by node key; they never change, so each process reads them once."""
    key = (run.pk, iteration)
    ids = _scope_ids.get(key)
    if ids is None:
        if len(_scope_ids) >= _SCOPE_CACHE_SIZE:
            _scope_ids.pop(next(iter(_scope_ids)))
        ids = _scope_ids[key] = dict(
            NodeRun.objects.filter(run_id=run.pk, iteration=iteration).values_list("node_key", "pk")
        )
    return ids


def advance(run: Run, plan: Plan, finished: NodeRun) -> None:
    """After `finished` reached a final state: ready or skip its successors, and finish the
    scope (run or loop iteration) when nothing in it is left to do."""
    iteration = finished.iteration
    readied: list[int] = []
    started_inline = waiting = False
    worklist = [finished]
    while worklist:
        current = worklist.pop()
        for target in plan.successors(current.node_key):
            incoming = plan.incoming[target]
            if all(source == current.node_key for source, _ in incoming):
                # Fed by `current` alone, whose final state we hold: nothing to read, and the
                # next node gets its input from memory.
                known = {current.node_key: current}
                sources = {current.node_key: (current.state, current.handles)}
                row = NodeRun(pk=scope_ids(run, iteration)[target], run_id=run.pk, node_key=target, iteration=iteration)
            else:
                # Read after our own committed change (see the module docstring). States only:
                # every input of a wide join reads them, so outputs are left to the node itself.
                found = statements.scope_states(run.pk, iteration, {source for source, _ in incoming} | {target})
                state, handles, pk, attempt = found.pop(target)
                row = NodeRun(pk=pk, run_id=run.pk, node_key=target, iteration=iteration, attempt=attempt)
                row.state, row.handles = state, handles
                sources = {key: values[:2] for key, values in found.items()}  # (state, handles)
                known = {}
            if row.state != NodeState.PENDING:
                continue
            inputs = [(*sources[source], handle) for source, handle in incoming]
            decision = decide(plan.nodes[target].join, inputs)
            now = timezone.now()
            taker = handoff.get()
            if decision == READY and taker is not None and taker.free:
                if transition(
                    row,
                    [NodeState.PENDING],
                    state=NodeState.RUNNING,
                    ready_at=now,
                    started_at=now,
                    heartbeat_at=now,
                    worker=worker_name(),
                ):
                    row.run = run
                    taker.offer(row, known)
                    started_inline = True
            elif decision == READY and transition(row, [NodeState.PENDING], state=NodeState.READY, ready_at=now):
                readied.append(row.pk)
            elif decision == SKIP and transition(
                row, [NodeState.PENDING], state=NodeState.SKIPPED, finished_at=now, handles=[]
            ):
                worklist.append(row)
            elif decision == WAIT:
                waiting = True
    if readied:
        transaction.on_commit(lambda: enqueue(readied, run=run))
    elif not (started_inline or waiting):  # a successor still waiting means the scope is not done
        finish_scope_if_done(run, plan, iteration)


def finish_scope_if_done(run: Run, plan: Plan, iteration: str) -> None:
    if not iteration and _succeed_run_if_all_done(run):
        return
    # One read answers both questions: is anything left, and did something fail.
    rows = list(
        NodeRun.objects.filter(
            run_id=run.pk, iteration=iteration, state__in=[*NodeState.UNFINISHED, NodeState.FAILED]
        ).only("node_key", "state", "handles", "error")
    )
    if any(row.state in NodeState.UNFINISHED for row in rows):
        return
    if iteration:
        from pipelines.engine import loops

        loops.iteration_finished(run, plan, iteration)
    else:
        complete_run(run, failed=rows)


def _succeed_run_if_all_done(run: Run) -> bool:
    """The common ending in one statement: nothing left to run and no failure unhandled."""
    now = timezone.now()
    won = statements.succeed_run_if_all_done(run.pk, now)
    if won:
        _run_completed(run, RunState.SUCCEEDED, "", now)
    return won


def _run_completed(run: Run, state: str, error: str, now) -> None:
    run.state, run.error, run.finished_at = state, error, now
    transaction.on_commit(lambda: events.run_finished(run))
    if run.parent_node_run_id:
        from pipelines.engine import subruns

        subruns.child_finished(run)


def complete_run(run: Run, failed: list[NodeRun] | None = None) -> None:
    if failed is None:
        failed = list(NodeRun.objects.filter(run_id=run.pk, iteration="", state=NodeState.FAILED))
    failures = [row for row in failed if failed_unhandled(row.state, row.handles)]
    state = RunState.FAILED if failures else RunState.SUCCEEDED
    error = "; ".join(f"{row.node_key}: {row.error}" for row in failures)[:10000]
    now = timezone.now()
    if Run.objects.filter(pk=run.pk, state=RunState.RUNNING).update(state=state, error=error, finished_at=now):
        _run_completed(run, state, error, now)


# --- finishing a node ---------------------------------------------------------------


def succeed(run: Run, plan: Plan, node_run: NodeRun, result: NodeResult, state: str = NodeState.SUCCEEDED) -> bool:
    """Record the result and move on; False if the node run had left `running`/`waiting` or
    this attempt (a cancel, an attempt given up)."""
    now = timezone.now()
    leaving = [NodeState.RUNNING, NodeState.WAITING]
    changes = {
        "state": state,
        "output": result.output,
        "handles": result.handles,
        "progress": 1.0,
        "records_in": result.records_in if result.records_in is not None else node_run.records_in,
        "records_out": result.records_out if result.records_out is not None else node_run.records_out,
        "finished_at": now,
        "heartbeat_at": None,
    }
    if node_run.iteration or plan.successors(node_run.node_key):
        if not transition(node_run, leaving, **changes):
            return False
        advance(run, plan, node_run)
        return True
    # A top-level node with nothing downstream may be the run's last: the node's end and the
    # run's are one statement. Two such nodes ending at once may each see the other still
    # running, so one that did not end the run checks again after its commit (advance's rule).
    moved, ended = statements.end_node_and_run(node_run.pk, node_run.attempt, leaving, changes, run.pk, now)
    if moved:
        _moved(node_run, changes)
    if ended:
        _run_completed(run, RunState.SUCCEEDED, "", now)
    elif moved:
        finish_scope_if_done(run, plan, "")
    return moved


def retry_delay(node: PlanNode, failed_attempt: int) -> float:
    """Seconds before the attempt after `failed_attempt`: exponential backoff (node runs and
    shards alike)."""
    return float(node.settings.get("retry_backoff_seconds", 1.0)) * 2 ** (failed_attempt - 1)


def fail(run: Run, plan: Plan, node_run: NodeRun, message: str, *, retry: bool = True) -> bool:
    """Retry with exponential backoff while attempts remain; then fail, routing to the
    `error` handle if the node continues on failure. False if this attempt was no longer the
    node run's (it was cancelled, or given up as overdue): then nothing is written."""
    node = plan.nodes[node_run.node_key]
    retries = int(node.settings.get("retries", 0))
    attempt = node_run.attempt
    if retry and attempt <= retries:
        delay = retry_delay(node, attempt)
        if not transition(
            node_run,
            [NodeState.RUNNING, NodeState.WAITING],
            state=NodeState.READY,
            attempt=attempt + 1,
            error=message[:10000],
            ready_at=timezone.now() + timedelta(seconds=delay),
            heartbeat_at=None,
        ):
            return False
        write_log(node_run, f"attempt {attempt} failed: {message}; retrying in {delay:g} s", "warning")
        node_run_id = node_run.pk
        transaction.on_commit(lambda: enqueue([node_run_id], countdown=delay, run=run))
        return True
    handles = ["error"] if node.settings.get("continue_on_failure") else []
    if not transition(
        node_run,
        [NodeState.RUNNING, NodeState.WAITING],
        state=NodeState.FAILED,
        error=message[:10000],
        handles=handles,
        finished_at=timezone.now(),
        heartbeat_at=None,
    ):
        return False
    write_log(node_run, f"failed: {message}", "error")
    advance(run, plan, node_run)
    return True


# --- cancel -------------------------------------------------------------------------


def cancel_run(run: Run) -> bool:
    """Stop a run and its child runs. Queued node runs never start; running ones stop at their
    next progress check (their results are discarded). Returns False if already finished."""
    now = timezone.now()
    if not Run.objects.filter(pk=run.pk, state__in=RunState.ACTIVE).update(state=RunState.CANCELLED, finished_at=now):
        return False
    run.state, run.finished_at = RunState.CANCELLED, now
    _cancel_node_runs(run, now)
    for child in Run.objects.filter(parent_node_run__run_id=run.pk, state__in=RunState.ACTIVE):
        cancel_run(child)
    if run.parent_node_run_id:  # a child cancelled on its own: its Sub-pipeline node must not wait forever
        from pipelines.engine import subruns

        subruns.child_finished(run)
    return True


def _cancel_node_runs(run: Run, now) -> None:
    unfinished = list(NodeRun.objects.filter(run_id=run.pk, state__in=NodeState.UNFINISHED))
    NodeRun.objects.filter(pk__in=[nr.pk for nr in unfinished]).update(
        state=NodeState.CANCELLED, finished_at=now, heartbeat_at=None
    )
    queued = [task_id(nr.pk) for nr in unfinished if nr.state == NodeState.READY]
    from pipelines.engine import shards

    queued += shards.cancel_for_run(run)

    def announce():
        for node_run in unfinished:
            node_run.state, node_run.finished_at = NodeState.CANCELLED, now
            events.node_changed(node_run)
        events.run_changed(run)
        if queued:
            from datamate.celery import app

            app.control.revoke(queued)

    transaction.on_commit(announce)


def after_refused_claim(node_run_id: int, now) -> None:
    """A worker could not claim the node run it was sent (statements.claim_node_run). Usually
    a duplicate delivery: nothing to do. A message that came before the node run's retry was
    due (a redelivery) is sent again for that time, in case it is the only one left (the
    worker that held the delayed one died). And what a cancel could not see is
    cancelled with the rest of its run: a node run still ready in a cancelled run (a Loop
    iteration written just after the cancel read the run's node runs), or a run that a
    Sub-pipeline node started just after its own run was cancelled."""
    node_run = (
        NodeRun.objects.select_related("run__parent_node_run").filter(pk=node_run_id, state=NodeState.READY).first()
    )
    if node_run is None:
        return
    run = node_run.run
    if run.state == RunState.CANCELLED:
        _cancel_node_runs(run, timezone.now())
    elif run.parent_node_run is not None and run.parent_node_run.state == NodeState.CANCELLED:
        cancel_run(run)
    elif node_run.ready_at is not None and node_run.ready_at > now:
        enqueue([node_run.pk], countdown=(node_run.ready_at - now).total_seconds(), run=run)


def worker_name() -> str:
    """This process as the run page names it: Celery's node name (`worker1@host`) and the pool
    process id, which tell apart two workers and two processes of one worker."""
    from celery import current_task

    hostname = getattr(getattr(current_task, "request", None), "hostname", None) or socket.gethostname()
    return f"{hostname} pid {os.getpid()}"[-NodeRun._meta.get_field("worker").max_length :]


def overdue_timeout(node, started_at, stale) -> float | None:
    """The node's timeout if something of it (a node run, a shard) that started at
    `started_at` is running a stale-time past it: its worker could not stop it."""
    timeout = node.settings.get("timeout_seconds")
    if timeout and started_at + timedelta(seconds=float(timeout)) < stale:
        return float(timeout)
    return None


def overdue_message(timeout: float) -> str:
    """The error of a node run or shard failed by the sweeper past its timeout."""
    return f"timed out after {timeout:g} s (its worker could not stop it; the sweeper did)"


def task_id(node_run_id: int) -> str:
    return f"datamate-node-run-{node_run_id}"


def stale_after() -> timedelta:
    return timedelta(seconds=settings.DATAMATE_STALE_AFTER_SECONDS)
