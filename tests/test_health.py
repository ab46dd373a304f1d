"""GET /healthz against real dependencies: a private redis-server with no worker, and none."""

import time

from django.test import override_settings
import pytest

from datamate.embedded_redis import free_port, start_embedded_redis


@pytest.fixture(scope="module")
def lone_redis(tmp_path_factory):
    """A redis no Celery worker listens on (the suite's might have workers attached)."""
    server = start_embedded_redis(tmp_path_factory.mktemp("health-redis"))
    yield server.url
    server.stop()


def get_health(client, broker_url):
    with override_settings(CELERY_BROKER_URL=broker_url, REDIS_URL=broker_url):
        return client.get("/healthz")


def test_no_worker_is_unavailable(client, db, lone_redis):
    response = get_health(client, lone_redis)

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": {"ok": True},
        "redis": {"ok": True},
        "workers": {"ok": False, "count": 0, "names": []},
    }
    assert "no-cache" in response["Cache-Control"]


def test_redis_down_is_unavailable_and_answers_fast(client, db):
    closed_port = free_port()
    started = time.monotonic()
    response = get_health(client, f"redis://127.0.0.1:{closed_port}/0")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == {"ok": True}
    assert body["redis"]["ok"] is False
    assert str(closed_port) in body["redis"]["error"]
    assert body["workers"]["ok"] is False and body["workers"]["count"] == 0
    assert elapsed < 5
