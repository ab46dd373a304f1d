"""The periodic safety net (Celery beat): due timers, dead workers, lost messages.

Everything here is also done on the fast path (delayed tasks, acks); the sweeper makes it
survive any process dying, because it works from the database alone.
"""

from __future__ import annotations

from django.utils import timezone

from pipelines.engine import execution, runtime, shards
from pipelines.engine.states import NodeState
from pipelines.models import NodeRun

#: A node run re-queued after lost workers more often than this fails instead.
MAX_LOST_WORKER_ATTEMPTS = 5


def sweep() -> dict[str, int]:
    now = timezone.now()
    stale = now - runtime.stale_after()
    counts = {"resumed": 0, "requeued": 0, "reenqueued": 0}

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
            runtime.write_log(node_run, f"worker lost; starting attempt {node_run.attempt}", "warning")
            runtime.enqueue([node_run.pk])
            counts["requeued"] += 1

    # Ready for long but never claimed: its message was lost. A duplicate is harmless.
    lost = list(NodeRun.objects.filter(state=NodeState.READY, ready_at__lt=stale).values_list("pk", flat=True))
    if lost:
        NodeRun.objects.filter(pk__in=lost, state=NodeState.READY).update(ready_at=now)
        runtime.enqueue(lost)
        counts["reenqueued"] = len(lost)
    counts.update(shards.sweep(now, stale))
    return counts
