"""Celery tasks: the async boundary. Each takes ids, and delegates to the engine."""

from celery import shared_task

from pipelines.engine import execution, sweeper


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_node(node_run_id: int) -> None:
    execution.execute(node_run_id)


@shared_task(ignore_result=True)
def resume_node(node_run_id: int) -> None:
    execution.resume_due_wait(node_run_id)


@shared_task(ignore_result=True)
def sweep() -> None:
    sweeper.sweep()


@shared_task(acks_late=False, ignore_result=True)
def node_test(payload: dict) -> None:
    """Test one node without a Run (see pipelines/engine/node_test.py)."""
    from pipelines.engine import node_test as node_test_service

    node_test_service.execute_and_store(payload)
