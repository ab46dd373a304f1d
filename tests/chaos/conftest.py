"""Fixtures of the fault tests: the engine tests' worker processes (tests/engine/conftest.py),
a second worker, beat (whose sweeper finds the node runs of killed workers) and kill -9."""

import signal

import pytest

from tests.engine import workers


class Workers:
    """The session's worker and a second one, each killable with kill -9 and restarted."""

    def __init__(self, processes, log_dir):
        self.processes = processes
        self.log_dir = log_dir
        self.second = workers.start_worker(log_dir, name="worker2")

    def kill(self, index: int) -> None:
        """SIGKILL to the worker's whole process group (its pool children too), then a restart."""
        if index == 0:
            self.processes.worker.kill(signal.SIGKILL)
            self.processes.worker.stop()
            self.processes.start_worker()
        else:
            self.second.kill(signal.SIGKILL)
            self.second.stop()
            self.second = workers.start_worker(self.log_dir, name="worker2")

    def stop(self) -> None:
        self.second.stop()


@pytest.fixture
def two_workers(engine, processes, engine_logs):
    pair = Workers(processes, engine_logs)
    yield pair
    pair.stop()


@pytest.fixture
def beat(engine, processes):
    """celery beat, running the sweeper every DATAMATE_SWEEP_SECONDS; `engine` stops it after."""
    return processes.start_beat()
