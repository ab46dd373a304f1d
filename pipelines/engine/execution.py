"""Executing one node run on a worker: claim, build the context, run the executor, finish."""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
import os
import signal
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from nodes.execution import NodeFailed, NodeResult
from nodes.expressions import ExpressionError
from pipelines.engine import cache, events, loops, runtime, shards, statements, subruns
from pipelines.engine.plan import Plan, PlanNode, edge_state
from pipelines.engine.states import NodeState
from pipelines.models import NodeRun, NodeShard, Run


class NodeCancelled(Exception):
    pass


class NodeTimedOut(Exception):
    pass


def execute(node_run_id: int, run_message: dict[str, Any] | None = None) -> None:
    """Celery's entry point. A duplicate delivery finds nothing to claim and does nothing; one
    that comes before a retry is due is sent again for then; a node run readied after its run
    was cancelled is cancelled instead of run.

    When finishing a node readies successors, this worker claims one of them on the spot and
    runs it next (the others go to the queue): a chain costs one broker round trip, not one
    per node, and a fan-out still spreads over every worker. `run_message` is what the task
    carries of the run (runtime.run_message), which spares the worker reading it.
    """
    now = timezone.now()
    node_run = statements.claim_node_run(node_run_id, now, runtime.worker_name())
    if node_run is None:
        runtime.after_refused_claim(node_run_id, now)  # usually a duplicate: then it does nothing
        return
    node_run.run = runtime.run_for(node_run.run_id, run_message)
    transaction.on_commit(lambda: events.node_changed(node_run))
    handoff = runtime.Handoff()
    token = runtime.handoff.set(handoff)
    try:
        known_rows = None
        while node_run is not None:
            run_claimed(node_run, known_rows)
            node_run, known_rows = handoff.take()
    finally:
        runtime.handoff.reset(token)


def run_claimed(node_run: NodeRun, known_rows: dict[str, NodeRun] | None = None) -> None:
    """Execute a node run this worker holds (state `running`). `known_rows` are node runs of
    the same scope already read by the caller, which spares reading upstream outputs again."""
    run = node_run.run  # (a cancelled run has no node run left to claim)
    plan = runtime.plan_for(run)
    node = plan.nodes[node_run.node_key]
    try:
        context = build_context(run, plan, node, node_run, known_rows)
    except ExpressionError as exc:
        runtime.fail(run, plan, node_run, f"config: {exc}", retry=False)
        return
    if node.node_type.is_container:
        loops.start(run, plan, node, node_run, context)
        return
    key = cache.cache_key(node, context) if node.settings.get("cache") else None
    hit = cache.lookup(key) if key else None
    if hit is not None:
        result, source = hit
        runtime.write_log(node_run, f"reused the cached result of node run {source}")
        runtime.succeed(run, plan, node_run, result, state=NodeState.CACHED)
        return
    try:
        if shards.start_if_sharded(run, plan, node, node_run, context):
            return
    except (TypeError, ValueError) as exc:  # e.g. `shards` templated to something not a count
        runtime.fail(run, plan, node_run, f"shards: {exc}", retry=False)
        return
    try:
        with heartbeat(node_run), time_limit(node.settings.get("timeout_seconds")):
            result = node.node_type.execute(context)
    except NodeCancelled:
        return  # the cancel already set the state
    except NodeTimedOut:
        runtime.fail(run, plan, node_run, f"timed out after {node.settings['timeout_seconds']:g} s")
        return
    except (NodeFailed, ExpressionError) as exc:
        runtime.fail(run, plan, node_run, str(exc))
        return
    except Exception as exc:  # an executor's bug must fail the node, not the worker
        runtime.fail(run, plan, node_run, f"{type(exc).__name__}: {exc}")
        return
    # Cached before the node's end commits, so a run started once this one shows succeeded
    # finds it; withdrawn if the result was not recorded (an attempt given up meanwhile).
    cacheable = key and result.wait_until is None and result.child_run is None
    if cacheable:
        cache.store(key, node, node_run, result)
    if not finish(run, plan, node_run, result) and cacheable:
        cache.withdraw(key, node_run)


def finish(run: Run, plan: Plan, node_run: NodeRun, result: NodeResult) -> bool:
    """Record the executor's result; True if the node succeeded with it (this attempt was
    still the node run's), False if it waits or calls a child run, or was given up."""
    if result.child_run is not None:
        subruns.start_child(run, node_run, result.child_run)
        return False
    if result.wait_until is not None:
        pause_until(node_run, result)
        return False
    return runtime.succeed(run, plan, node_run, result)


def pause_until(node_run: NodeRun, result: NodeResult) -> None:
    """Wait without holding a worker: the timer is a row; a delayed task and the sweeper resume it."""
    if runtime.transition(
        node_run,
        [NodeState.RUNNING],
        state=NodeState.WAITING,
        resume_at=result.wait_until,
        output=result.output,
        handles=result.handles,
        heartbeat_at=None,
    ):
        from pipelines.tasks import resume_node

        delay = max(0.0, (result.wait_until - timezone.now()).total_seconds())
        node_run_id = node_run.pk
        transaction.on_commit(lambda: resume_node.apply_async((node_run_id,), countdown=delay))


def resume_due_wait(node_run_id: int) -> None:
    node_run = NodeRun.objects.filter(pk=node_run_id, state=NodeState.WAITING).first()
    if node_run is None or node_run.resume_at is None or node_run.resume_at > timezone.now():
        return
    run = runtime.run_for(node_run.run_id)
    result = NodeResult(output=node_run.output or {}, handles=node_run.handles or ["out"])
    runtime.succeed(run, runtime.plan_for(run), node_run, result)


# --- context ------------------------------------------------------------------------


@dataclass
class Context:
    run_id: int
    node_key: str
    attempt: int
    config: dict[str, Any]
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    loop: dict[str, Any] | None
    owner_id: int
    node_run: NodeRun
    variables: dict[str, Any] = field(repr=False, default_factory=dict)
    #: In a shard of a sharded data node: {"stage", "index", "of", "attempt", "offset"} (see
    #: shards.py).
    shard: dict[str, Any] | None = None
    shard_row: Any = field(repr=False, default=None)
    _last_progress_write: float = 0.0

    def log(self, message: str, level: str = "info") -> None:
        if self.shard is not None:
            message = f"[shard {self.shard['index'] + 1}/{self.shard['of']}] {message}"
        runtime.write_log(self.node_run, str(message), level)

    def progress(
        self, fraction: float | None = None, *, records_in: int | None = None, records_out: int | None = None
    ) -> None:
        """Store and publish progress at most a few times a second; stop if the run was
        cancelled or the node's time is up."""
        check_deadline()
        now = time.monotonic()
        if now - self._last_progress_write < settings.DATAMATE_PROGRESS_INTERVAL_SECONDS and fraction != 1.0:
            return
        self._last_progress_write = now
        if self.shard_row is not None:
            if not shards.report_progress(self, fraction, records_in, records_out):
                raise NodeCancelled()
            return
        changes = runtime.progress_changes(fraction, records_in, records_out)
        if not runtime.transition(self.node_run, [NodeState.RUNNING], **changes):
            raise NodeCancelled()


def build_context(
    run: Run, plan: Plan, node: PlanNode, node_run: NodeRun, known_rows: dict[str, NodeRun] | None = None
) -> Context:
    """Inputs from live upstream edges, and the config with its templates resolved."""
    iteration = node_run.iteration
    wanted = set(plan.predecessors(node.key)) | node.referenced_nodes
    known = {key: (row.state, row.handles, row.output) for key, row in (known_rows or {}).items() if key in wanted}
    outputs = {**_outputs(run, wanted - known.keys(), iteration), **known}
    inputs: dict[str, dict[str, Any]] = {}
    for source, handle in plan.incoming.get(node.key, ()):
        row = outputs.get(source)
        if row and edge_state(row[0], row[1], handle):
            inputs[source] = row[2] or {}
    loop = None
    if iteration:
        loop = loops.loop_variables(run, plan, iteration)
        if not plan.incoming.get(node.key):  # a first node of a Loop body gets the Loop's input
            inputs = loop.pop("inputs")
        else:
            loop.pop("inputs")
    variables = {
        "params": run.params,
        "nodes": {key: {"output": row[2] or {}, "state": row[0]} for key, row in outputs.items()},
        "loop": loop or {},
    }
    config = node.node_type.resolve_config(node.config, variables)
    return Context(
        run_id=run.pk,
        node_key=node.key,
        attempt=node_run.attempt,
        config=config,
        params=run.params,
        inputs=inputs,
        loop=loop,
        owner_id=run.pipeline.owner_id,
        node_run=node_run,
        variables=variables,
    )


def _outputs(run: Run, keys: set[str], iteration: str) -> dict[str, tuple[str, Any, Any]]:
    """(state, handles, output) of the given nodes, in this iteration or an enclosing one."""
    if not keys:
        return {}
    scopes = [iteration]
    while scopes[-1]:
        scopes.append(scopes[-1].rpartition("/")[0])
    found: dict[str, tuple[str, Any, Any]] = {}
    rows = NodeRun.objects.filter(run_id=run.pk, node_key__in=keys, iteration__in=scopes).values_list(
        "node_key", "iteration", "state", "handles", "output"
    )
    depth = {scope: index for index, scope in enumerate(scopes)}
    for key, _scope, state, handles, output in sorted(rows, key=lambda r: -depth[r[1]]):
        found[key] = (state, handles, output)  # the innermost scope wins
    return found


# --- worker-side guards -------------------------------------------------------------


class _Heartbeats:
    """One thread per worker process stamps `heartbeat_at` on the node runs it is executing,
    so the sweeper can tell a live worker from a dead one (a thread per node would cost more
    than a fast node itself)."""

    def __init__(self):
        self._active: dict[tuple[type, int], int] = {}
        self._pid: int | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def beating(self, row: NodeRun | NodeShard):
        """While the block runs, stamp the row (a node run or a shard) on this attempt."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._active = {}
                    threading.Thread(target=self._beat, name="datamate-heartbeat", daemon=True).start()
                    self._pid = os.getpid()
        key = (type(row), row.pk)
        self._active[key] = row.attempt
        try:
            yield
        finally:
            # An attempt the sweeper gave up for overdue may return after the next attempt
            # began in another thread of this process: the entry is then the next one's.
            if self._active.get(key) == row.attempt:
                self._active.pop(key, None)

    def _beat(self) -> None:
        while True:
            time.sleep(settings.DATAMATE_HEARTBEAT_SECONDS)
            try:
                for (model, pk), attempt in list(self._active.items()):
                    model.objects.filter(pk=pk, state=NodeState.RUNNING, attempt=attempt).update(
                        heartbeat_at=timezone.now()
                    )
            except Exception:  # the database may be briefly unavailable; beat again later
                close_old_connections()


heartbeat = _Heartbeats().beating


#: When the node run this thread executes must stop (time.monotonic()), if it has a timeout.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("datamate_node_deadline", default=None)


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise NodeTimedOut in the executor after `seconds`. In a process's main thread (the
    prefork pool) SIGALRM interrupts whatever the executor is doing. In another thread (a
    thread pool), where no signal reaches, the executor stops at its next progress() call
    (check_deadline); one that never calls it is failed by the sweeper (sweeper.fail_overdue)."""
    if not seconds:
        yield
        return
    token = _deadline.set(time.monotonic() + float(seconds))
    try:
        if threading.current_thread() is threading.main_thread():
            with _alarm(float(seconds)):
                yield
        else:
            yield
    finally:
        _deadline.reset(token)


def check_deadline() -> None:
    """Raise NodeTimedOut if the node run this thread executes is past its time limit."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise NodeTimedOut()


@contextlib.contextmanager
def _alarm(seconds: float):
    def expire(signum, frame):
        raise NodeTimedOut()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
