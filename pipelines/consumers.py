"""The live view of one run: `/ws/runs/<id>/` sends a snapshot, then every change as a delta.

Protocol (server → client; the client sends nothing):

    {"type": "snapshot", "seq": S, "run": {...}, "node_runs": [{...}, ...], "logs": [{...}, ...]}
    {"type": "delta", "seq": N, "event": {"kind": "run" | "node" | "log", ...}}

The payloads are the ones `pipelines.engine.events` builds, in snapshots and deltas alike.

Why snapshot + deltas never miss a change
-----------------------------------------
The engine publishes an event only after the change it describes is committed
(`transaction.on_commit`), and the publisher increments the run's sequence (a Redis
counter) before it sends the event to the run's group. On connect this consumer does three
things in this order:

1. join the group `run-<id>`;
2. read the sequence S;
3. read the run, its node runs and its last log lines from the database.

Take any change and its event with number N:

* N <= S: the counter was incremented before step 2, so the change was committed before
  step 2, hence before step 3: the snapshot contains it. If the event still reaches us
  (it was sent after step 1), it is dropped.
* N > S: the counter was incremented after step 2, so the event was sent to the group
  after step 1: we receive it and forward it.

So every change is either in the snapshot or arrives as a delta (possibly both: a change
committed before step 3 whose counter moved after step 2 — harmless, see the client rules).

Order and gaps. Events come from many processes (the web process, every worker), so they
can reach us in a different order than their numbers. The consumer therefore forwards
deltas strictly in sequence order: an event that arrives early waits (at most `GAP_WAIT`
seconds) for the ones before it. If a number stays missing (a publisher died between
numbering and sending, or the channel layer dropped a message because this channel was
full), the consumer sends a fresh snapshot instead, and continues from there. A client
thus sees snapshot, then deltas S+1, S+2, ... with no gaps, and possibly a later snapshot
that replaces everything it held.

Client rules (implemented in static/js/run.js):

* A snapshot replaces all state.
* A node delta is applied only if its `version` (states.state_version) is >= the version
  held for that node run: events from different workers can arrive out of order, and a
  duplicate of a snapshot row must not move a node run backwards. Unknown node runs (a
  new loop iteration, a retry's new row) are added.
* A run delta never moves a finished run back to pending/running.
* Log lines are kept by id, so a line that is both in the snapshot and a delta shows once.
* On a gap in `seq` (never sent by this consumer, but a client must not trust the wire
  blindly) wait briefly for the missing number; if it is still missing, reconnect for a
  fresh snapshot.

Access: the session user (AuthMiddlewareStack) must be able to see the run's pipeline
(`services.visible_pipelines`). Otherwise the socket is accepted and closed at once with
4401 (not logged in) or 4403 (not allowed / no such run), so a browser learns why and does
not retry.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from pipelines import services
from pipelines.engine import events
from pipelines.models import NodeRun, NodeRunLog, Run

SNAPSHOT_LOG_LINES = 200
#: How long an early event waits for the missing ones before the consumer resynchronises.
GAP_WAIT = 1.0

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def may_see_run(user, run_id: int) -> bool:
    return Run.objects.filter(pk=run_id, pipeline__in=services.visible_pipelines(user)).exists()


def snapshot(run_id: int) -> dict[str, Any] | None:
    """Steps 2 and 3 of the module docstring: the sequence first, then the database.
    None if the run no longer exists."""
    seq = events.current_sequence(run_id)
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return None
    node_runs = list(NodeRun.objects.filter(run_id=run_id).order_by("id"))
    by_id = {row.pk: row for row in node_runs}
    logs = list(NodeRunLog.objects.filter(node_run__run_id=run_id).order_by("-id")[:SNAPSHOT_LOG_LINES])
    logs.reverse()
    return {
        "type": "snapshot",
        "seq": seq,
        "run": events.run_payload(run),
        "node_runs": [events.node_run_payload(row) for row in node_runs],
        "logs": [events.log_payload(log, by_id[log.node_run_id]) for log in logs],
    }


class RunConsumer(AsyncJsonWebsocketConsumer):
    """A thin adapter: access check, snapshot, ordered forwarding of the run's events."""

    group: str | None = None

    async def connect(self):
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(may_see_run)(user, self.run_id):
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.seq = 0  # the last sequence number the client has (snapshot or delta)
        self.early: dict[int, dict] = {}  # events that arrived before their predecessors
        self.gap_timer: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        self.group = events.group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)  # step 1
        await self.accept()
        async with self.lock:
            await self._send_snapshot()  # steps 2 and 3

    async def _refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code):
        if self.group is not None:
            if self.gap_timer is not None:
                self.gap_timer.cancel()
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """Clients send nothing; anything they do send is ignored."""

    async def run_event(self, message: dict) -> None:
        async with self.lock:
            seq = message["seq"]
            if seq <= self.seq:
                return  # already in the snapshot, or a duplicate
            self.early[seq] = message["event"]
            await self._forward_in_order()

    async def _send_snapshot(self) -> None:
        data = await database_sync_to_async(snapshot)(self.run_id)
        if data is None:
            self.early = {}
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.seq = data["seq"]
        self.early = {seq: event for seq, event in self.early.items() if seq > self.seq}
        await self.send_json(data)
        await self._forward_in_order()

    async def _forward_in_order(self) -> None:
        while self.seq + 1 in self.early:
            self.seq += 1
            await self.send_json({"type": "delta", "seq": self.seq, "event": self.early.pop(self.seq)})
        if self.early and self.gap_timer is None:
            self.gap_timer = asyncio.create_task(self._resync_after_gap())
        elif not self.early and self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None

    async def _resync_after_gap(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(GAP_WAIT)
            async with self.lock:
                self.gap_timer = None
                if self.early:
                    await self._send_snapshot()
