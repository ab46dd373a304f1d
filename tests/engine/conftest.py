import time

import pytest

from pipelines.engine import events
from pipelines.engine.states import RunState
from pipelines.models import NodeRun, Run
from tests.engine import workers


@pytest.fixture(scope="session")
def engine_logs(tmp_path_factory):
    return tmp_path_factory.mktemp("engine-processes")


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, engine_logs):
    """Two real prefork worker processes (one Celery worker, concurrency 2) for the session."""
    workers.purge_queue()
    process = workers.start_worker(engine_logs)
    yield process
    process.stop()


@pytest.fixture
def engine(transactional_db, worker):
    """What an engine test needs: committed data visible to the worker, and a live worker."""
    assert worker.popen.poll() is None, worker.output()[-3000:]
    yield worker
    events.flush()


def wait_for_run(run: Run, timeout: float = 30) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in RunState.FINISHED:
            return run
        time.sleep(0.05)
    states = dict(NodeRun.objects.filter(run=run).values_list("node_key", "state"))
    raise AssertionError(f"run {run.pk} still {run.state} after {timeout} s: {states}")


def node_states(run: Run, iteration: str = "") -> dict[str, str]:
    return dict(NodeRun.objects.filter(run=run, iteration=iteration).values_list("node_key", "state"))


def outputs(run: Run, iteration: str = "") -> dict[str, dict]:
    return dict(NodeRun.objects.filter(run=run, iteration=iteration).values_list("node_key", "output"))
