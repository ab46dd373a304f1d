import time

import pytest

from pipelines.engine import events
from pipelines.engine.states import RunState
from pipelines.models import NodeRun, Run
from tests.engine import workers


@pytest.fixture(scope="session")
def engine_logs(tmp_path_factory):
    return tmp_path_factory.mktemp("engine-processes")


class Processes:
    """The session's worker (concurrency 2), restartable by tests that kill it, and beat."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.worker = None
        self.beat = None

    def start_worker(self):
        self.worker = workers.start_worker(self.log_dir)
        return self.worker

    def start_beat(self):
        self.beat = workers.start_beat(self.log_dir)
        return self.beat

    def stop_all(self):
        for process in (self.worker, self.beat):
            if process is not None:
                process.stop()
        self.worker = self.beat = None


@pytest.fixture(scope="session")
def processes(django_db_setup, django_db_blocker, engine_logs):
    workers.purge_queue()
    running = Processes(engine_logs)
    running.start_worker()
    yield running
    running.stop_all()


@pytest.fixture
def engine(transactional_db, processes):
    """What an engine test needs: committed data visible to a live worker process."""
    if processes.worker is None or processes.worker.popen.poll() is not None:
        processes.start_worker()
    yield processes.worker
    events.flush()
    if processes.beat is not None:
        processes.beat.stop()
        processes.beat = None


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
