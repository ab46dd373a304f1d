"""Live events: every state change, progress update and log line of a run, pushed to the
Channels group `run-<id>` after the change is committed.

Publishing must not slow the engine down, so a worker hands events to one background
thread per process, which numbers them (a Redis counter per run, so a client can tell it
missed nothing) and sends them through the channel layer in batches (what is queued within
LINGER_SECONDS of the first, or until a run's end flushes them): a group message
`{"type": "run.events", "first_seq": N, "events": [...]}` carries events N, N+1, …. Clients rebuild state from a
snapshot plus these deltas; each node-run delta carries `version` (see states.py) so one
that arrives late never overwrites a newer state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import threading
import time
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
import redis

logger = logging.getLogger(__name__)

SEQUENCE_TTL_SECONDS = 7 * 24 * 3600
MAX_BATCH = 500
#: How long the publisher waits for more events before it sends a batch, unless flushed:
#: the changes of a fast node (running, then succeeded) go out as one message, which costs
#: the machine one send instead of two while the engine needs the CPU.
LINGER_SECONDS = 0.005
#: Put in the queue by `flush`: send what is queued now.
_SEND_NOW = object()


def group_name(run_id: int) -> str:
    return f"run-{run_id}"


def sequence_key(run_id: int) -> str:
    return f"datamate:run:{run_id}:seq"


@functools.cache
def redis_client() -> redis.Redis:
    """One client (with its connection pool) per process; redis-py clients are thread-safe."""
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


class _Publisher:
    """One daemon thread per process (started lazily, again after a fork)."""

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pid: int | None = None
        self._lock = threading.Lock()
        #: Events handed over but not yet sent; `flush` waits for it to reach zero.
        self._unsent = 0
        self._sent = threading.Condition()

    def publish(self, run_id: int, event: dict[str, Any]) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue.SimpleQueue()
                    self._unsent, self._sent = 0, threading.Condition()
                    threading.Thread(target=self._serve, name="datamate-events", daemon=True).start()
                    self._pid = os.getpid()
        with self._sent:
            self._unsent += 1
        self._queue.put((run_id, event))

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued without lingering, and wait until every queued event was sent."""
        with self._sent:
            if self._unsent == 0:
                return True
        self._queue.put(_SEND_NOW)
        with self._sent:
            return self._sent.wait_for(lambda: self._unsent == 0, timeout)

    def _next_batch(self) -> list[tuple[int, dict[str, Any]]]:
        """The events queued until LINGER_SECONDS after the first, a flush, or MAX_BATCH."""
        pending = self._queue
        first = pending.get()
        batch = [] if first is _SEND_NOW else [first]
        deadline = time.monotonic() + LINGER_SECONDS
        while batch and len(batch) < MAX_BATCH:
            try:
                item = pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _SEND_NOW:
                break
            batch.append(item)
        return batch

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        layer = get_channel_layer()
        client = redis_client()
        while True:
            # One counter update and one message per run, however many events.
            batch = self._next_batch()
            if not batch:
                continue
            by_run: dict[int, list[dict[str, Any]]] = {}
            for run_id, event in batch:
                by_run.setdefault(run_id, []).append(event)
            try:
                with client.pipeline() as pipe:
                    for run_id, run_events in by_run.items():
                        pipe.incrby(sequence_key(run_id), len(run_events))
                        pipe.expire(sequence_key(run_id), SEQUENCE_TTL_SECONDS)
                    last_seqs = pipe.execute()[::2]
                messages = [
                    (group_name(run_id), {"type": "run.events", "first_seq": last - len(evs) + 1, "events": evs})
                    for (run_id, evs), last in zip(by_run.items(), last_seqs, strict=True)
                ]
                loop.run_until_complete(_send_all(layer, messages))
            except Exception:
                # A lost event is recovered by the client's next snapshot; never fail the run.
                logger.exception("could not publish %d events", len(batch))
            with self._sent:
                self._unsent -= len(batch)
                self._sent.notify_all()


async def _send_all(layer, messages: list[tuple[str, dict[str, Any]]]) -> None:
    await asyncio.gather(*(layer.group_send(group, message) for group, message in messages))


_publisher = _Publisher()
publish = _publisher.publish
flush = _publisher.flush


# --- payloads: the same shapes in snapshots and deltas ---------------------------------


def _time(value) -> str | None:
    return value.isoformat() if value else None


def node_run_payload(node_run) -> dict[str, Any]:
    from pipelines.engine.states import state_version

    return {
        "id": node_run.pk,
        "node_key": node_run.node_key,
        "iteration": node_run.iteration,
        "state": node_run.state,
        "attempt": node_run.attempt,
        "worker": node_run.worker,
        "version": state_version(node_run.state, node_run.attempt),
        "progress": node_run.progress,
        "records_in": node_run.records_in,
        "records_out": node_run.records_out,
        "output": node_run.output,
        "error": node_run.error,
        "started_at": _time(node_run.started_at),
        "finished_at": _time(node_run.finished_at),
    }


def run_payload(run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "pipeline": run.pipeline_id,
        "version": run.version,
        "state": run.state,
        "error": run.error,
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
    }


def log_payload(log, node_run) -> dict[str, Any]:
    return {
        "id": log.pk,
        "node_run": node_run.pk,
        "node_key": node_run.node_key,
        "iteration": node_run.iteration,
        "level": log.level,
        "message": log.message,
        "created_at": _time(log.created_at),
    }


SNAPSHOT_LOG_LINES = 200


def run_state(run) -> dict[str, Any]:
    """A run as the live views start from it: its node runs and its latest log lines."""
    from pipelines.models import NodeRun, NodeRunLog

    node_runs = list(NodeRun.objects.filter(run_id=run.pk).order_by("id"))
    by_id = {row.pk: row for row in node_runs}
    logs = list(NodeRunLog.objects.filter(node_run__run_id=run.pk).order_by("-id")[:SNAPSHOT_LOG_LINES])
    logs.reverse()
    return {
        "run": run_payload(run),
        "node_runs": [node_run_payload(row) for row in node_runs],
        "logs": [log_payload(log, by_id[log.node_run_id]) for log in logs],
    }


def node_changed(node_run) -> None:
    publish(node_run.run_id, {"kind": "node", "node_run": node_run_payload(node_run)})


def run_changed(run) -> None:
    publish(run.pk, {"kind": "run", "run": run_payload(run)})


#: How long a process waits for a run's last event to be sent (Redis may be down).
FINISHED_EVENT_WAIT = 1.0


def run_finished(run) -> None:
    """The end of a run is what its watchers wait for: send it before this process goes on
    (a worker would otherwise first fetch and start its next task)."""
    run_changed(run)
    flush(FINISHED_EVENT_WAIT)


def log_written(log, node_run) -> None:
    publish(node_run.run_id, {"kind": "log", "log": log_payload(log, node_run)})
