"""Celery tasks: the async boundary. Each takes ids, and delegates to the engine."""

from datetime import UTC, datetime
import time

from celery import Task, shared_task

from pipelines import schedules
from pipelines.engine import execution, shards, sweeper


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_node(node_run_id: int, run: dict | None = None) -> None:
    execution.execute(node_run_id, run)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_shard(shard_id: int) -> None:
    shards.execute(shard_id)


@shared_task(ignore_result=True)
def resume_node(node_run_id: int) -> None:
    execution.resume_due_wait(node_run_id)


@shared_task(ignore_result=True)
def sweep() -> None:
    try:
        sweeper.sweep()
    finally:
        schedules.start_pending_fires()  # `queue` overlap policy: held fires whose pipeline is idle


@shared_task(acks_late=False, ignore_result=True)
def node_test(payload: dict) -> None:
    """Test one node without a Run (see pipelines/engine/node_test.py)."""
    from pipelines.engine import node_test as node_test_service

    node_test_service.execute_and_store(payload)


class _StampedWhenSent(Task):
    """Adds `sent_at` (the sender's clock) to the message, so the worker can tell a fire that
    waited in the queue behind busy workers (on time) from one beat sent late (missed)."""

    def apply_async(self, args=None, kwargs=None, **options):
        return super().apply_async(args, {"sent_at": time.time(), **(kwargs or {})}, **options)


@shared_task(base=_StampedWhenSent, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def fire_schedule(schedule_id: int, sent_at: float | None = None) -> None:
    """Sent by celery beat (the schedule's PeriodicTask); see pipelines/schedules.py."""
    schedules.fire(schedule_id, sent_at=datetime.fromtimestamp(sent_at, UTC) if sent_at else None)
