import pytest
from rest_framework.test import APIClient

from datamate.celery import app as celery_app
from pipelines.engine import events
from tests.engine import workers
from tests.factories import create_user


@pytest.fixture
def alice(db):
    return create_user("alice")


@pytest.fixture
def bob(db):
    return create_user("bob")


@pytest.fixture
def staff(db):
    return create_user("root", staff=True)


@pytest.fixture
def api_client():
    return APIClient()


def api_client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def alice_api(alice):
    return api_client_for(alice)


@pytest.fixture
def bob_api(bob):
    return api_client_for(bob)


@pytest.fixture(autouse=True, scope="session")
def celery_configured_from_real_settings():
    """Celery builds its connection and producer pools at first use and keeps them. Make that
    first use happen here, so a test that overrides CELERY_BROKER_URL (the health check) cannot
    leave the whole session's Celery pointing at its broker."""
    assert celery_app.conf.broker_url
    assert celery_app.pool is not None
    assert celery_app.amqp.producer_pool is not None


# --- real worker processes: one set for the whole session, whichever tests use them ---


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

    def kill_worker(self):
        """kill -9 of the worker and its pool processes: what it held (a running node, a
        delayed message) dies with it. Start a new one with start_worker()."""
        self.worker.kill()
        self.worker.stop()

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
