"""GET /healthz: can this deployment run pipelines right now?

200 only when the database answers, the broker answers and at least one Celery worker
replies to a ping; 503 otherwise. Unauthenticated: it reports component states, no data.
Every check has a short timeout so a dead dependency makes the answer fast, not slow.
"""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
import redis

from datamate.celery import app as celery_app

REDIS_TIMEOUT = 1.0
# Load balancer probes often time out after 1 s; a live worker answers in milliseconds.
WORKER_PING_TIMEOUT = 0.5


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "unavailable", whatever the backend raises
        return {"ok": False, "error": _error(exc)}
    return {"ok": True}


def check_redis(url: str) -> dict:
    client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as exc:
        return {"ok": False, "error": _error(exc)}
    finally:
        client.close()
    return {"ok": True}


def check_workers(url: str) -> dict:
    """Ping the workers listening on the broker at `url` (the one check_redis just saw up)."""
    try:
        with celery_app.connection_for_write(url) as conn:
            replies = celery_app.control.ping(timeout=WORKER_PING_TIMEOUT, connection=conn)
    except Exception as exc:  # kombu wraps transport errors in several exception types
        return {"ok": False, "count": 0, "names": [], "error": _error(exc)}
    names = sorted(name for reply in replies for name in reply)
    return {"ok": bool(names), "count": len(names), "names": names}


@never_cache
@require_safe  # a probe reads; any other method is a 405, not a round of pings
def healthz(request):
    broker_url = settings.CELERY_BROKER_URL
    database = check_database()
    broker = check_redis(broker_url)
    if broker["ok"]:
        workers = check_workers(broker_url)
    else:
        workers = {"ok": False, "count": 0, "names": [], "error": "redis is unavailable"}
    healthy = database["ok"] and broker["ok"] and workers["ok"]
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "database": database, "redis": broker, "workers": workers},
        status=200 if healthy else 503,
    )
