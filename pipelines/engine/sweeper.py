"""The periodic safety net (Celery beat): due timers, dead workers, lost messages, nodes
their worker could not stop at their timeout.

Everything here is also done on the fast path (delayed tasks, acks, SIGALRM); the sweeper
makes it survive any process dying, because it works from the database alone.
"""

from __future__ import annotations

import contextlib

from django.db import IntegrityError
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from pipelines.engine import execution, loops, runtime, shards, subruns
from pipelines.engine.states import NodeState, RunState
from pipelines.models import NodeRun, Run

#: A node run re-queued after lost workers more often than this fails instead.
MAX_LOST_WORKER_ATTEMPTS = 5


def sweep() -> dict[str, int]:
    now = timezone.now()
    stale = now - runtime.stale_after()
    counts = {"resumed": 0, "requeued": 0, "reenqueued": 0, "unstalled": 0}

    for node_run_id in NodeRun.objects.filter(state=NodeState.WAITING, resume_at__lte=now).values_list("pk", flat=True):
        execution.resume_due_wait(node_run_id)
        counts["resumed"] += 1

    # A running node run whose heartbeat stopped: its worker died. Run it again.
    for node_run in NodeRun.objects.select_related("run").filter(state=NodeState.RUNNING, heartbeat_at__lt=stale):
        if node_run.attempt >= MAX_LOST_WORKER_ATTEMPTS + 1:
            plan = runtime.plan_for(node_run.run)
            runtime.fail(node_run.run, plan, node_run, "its worker was lost too many times", retry=False)
            continue
        if runtime.transition(
            node_run,
            [NodeState.RUNNING],
            state=NodeState.READY,
            attempt=node_run.attempt + 1,
            ready_at=now,
            heartbeat_at=None,
        ):
            lost = f"worker {node_run.worker} lost" if node_run.worker else "worker lost"
            runtime.write_log(node_run, f"{lost}; starting attempt {node_run.attempt}", "warning")
            runtime.enqueue([node_run.pk])
            counts["requeued"] += 1

    counts["timed_out"] = fail_overdue(stale)

    # Ready for long but never claimed: its message was lost. A duplicate is harmless.
    lost = list(NodeRun.objects.filter(state=NodeState.READY, ready_at__lt=stale).values_list("pk", flat=True))
    if lost:
        NodeRun.objects.filter(pk__in=lost, state=NodeState.READY).update(ready_at=now)
        runtime.enqueue(lost)
        counts["reenqueued"] = len(lost)
    counts.update(shards.sweep(now, stale))
    for run in stalled_runs(stale):
        counts["unstalled"] += unstall(run, stale)
    return counts


def fail_overdue(stale) -> int:
    """Fail node runs still running a stale-time past their node's timeout: their worker
    could not stop them (an executor in a thread, where no SIGALRM reaches, that never calls
    progress()). Should such an executor still finish, its result is discarded: every end is
    fenced by the state and attempt. The time limit of a shard is kept the same way."""
    failed = 0
    running = NodeRun.objects.filter(state=NodeState.RUNNING, started_at__lt=stale)
    # The spec is read only by a sweeper lacking the plan; most long nodes have no timeout.
    for node_run in running.select_related("run__pipeline").defer("run__spec"):
        plan = runtime.plan_for(node_run.run)
        timeout = runtime.overdue_timeout(plan.nodes[node_run.node_key], node_run.started_at, stale)
        if timeout and runtime.fail(node_run.run, plan, node_run, runtime.overdue_message(timeout)):
            failed += 1
    return failed + shards.fail_overdue(stale)


def stalled_runs(stale):
    """Running runs where no node run is ready, running or waiting on something that will
    move it (a timer, shards, a child run), and none moved since `stale`: a worker died
    between committing a node's final state and moving on (readying the successors, ending a
    Loop iteration or the run), so nothing else will move them."""
    active_child = Run.objects.filter(parent_node_run=OuterRef("pk"), state__in=RunState.ACTIVE)
    busy = NodeRun.objects.filter(run_id=OuterRef("pk")).filter(
        Q(state__in=[NodeState.READY, NodeState.RUNNING])
        | Q(state=NodeState.WAITING, resume_at__isnull=False)
        | Q(state=NodeState.WAITING, shard_stage__isnull=False)
        | Q(Exists(active_child), state=NodeState.WAITING)
        | Q(ready_at__gte=stale)
        | Q(started_at__gte=stale)
        | Q(finished_at__gte=stale)
    )
    return Run.objects.filter(state=RunState.RUNNING, started_at__lt=stale).exclude(Exists(busy))


def unstall(run: Run, stale) -> int:
    """Make the moves a dead worker left undone, from the database. Each is a conditional
    update, so a move already made is not made twice. Returns 1 if the run was looked at."""
    run = runtime.run_for(run.pk)
    plan = runtime.plan_for(run)
    rows = list(NodeRun.objects.filter(run_id=run.pk))
    waiting = [row for row in rows if row.state == NodeState.WAITING]
    loops_waiting = [row for row in waiting if plan.nodes[row.node_key].node_type.is_container]
    others_waiting = [row for row in waiting if not plan.nodes[row.node_key].node_type.is_container]
    for row in others_waiting:
        # A Sub-pipeline node whose child run ended long ago, and the worker that ended it
        # died before moving this node on. (Anything else waiting moves on by itself.)
        child = Run.objects.filter(parent_node_run=row, state__in=RunState.FINISHED, finished_at__lt=stale)
        child = child.order_by("-pk").first()
        if child is None:
            return 0
        subruns.child_finished(child)
    scopes = {row.iteration for row in rows}
    for loop in loops_waiting:  # a Loop whose next iteration was never created
        if runtime.iteration_path(loop.iteration, loop.node_key, loop.iterations_done) not in scopes:
            with contextlib.suppress(IntegrityError):  # a slow worker created it after all
                loops.resume(run, plan, loop)
    for row in rows:
        if row.state in NodeState.FINISHED:
            runtime.advance(run, plan, row)
    return 1
