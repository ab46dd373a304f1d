"""The live view of one run: `/ws/runs/<id>/` sends a snapshot, then every change as a delta.

Protocol (server → client; the client sends nothing):

    {"type": "snapshot", "seq": S, "run": {...}, "node_runs": [{...}, ...], "logs": [{...}, ...]}
    {"type": "delta", "seq": N, "event": {"kind": "run" | "node" | "log", ...}}

The payloads are the ones `pipelines.engine.events` builds, in snapshots and deltas alike.
The engine publishes numbered events to the group `run-<id>` (batches of consecutive
numbers, `{"type": "run.events", "first_seq": N, "events": [...]}`); this consumer turns
them into one delta per number.

Why snapshot + deltas never miss a change
-----------------------------------------
The engine publishes an event only after the change it describes is committed
(`transaction.on_commit`), and its publisher increments the run's sequence (a Redis
counter) before it sends the event to the group. On connect this consumer does, in order:

1. join the group `run-<id>`, and wait until a marker it sends through the group comes
   back. With the Redis pub/sub layer `group_add` returns once SUBSCRIBE is *sent*; the
   marker proves Redis has *processed* it, so every later PUBLISH reaches us;
2. read the sequence S (with Redis's `run_id`, in one round trip: `sequence_and_server`);
3. read the run, its node runs and its last log lines from the database.

Take any change and its event with number N:

* N <= S: the counter was incremented before step 2, so the change was committed before
  step 2, hence before step 3: the snapshot contains it. If the event still reaches us,
  it is dropped.
* N > S: the counter was incremented after step 2, so the event was published after step
  1 had taken effect: we receive it and forward it.

So every change is either in the snapshot or arrives as a delta (possibly both: a change
committed before step 3 whose counter moved after step 2 — harmless, see the client rules).

Order, gaps and losses. Events come from many processes (the web process, every worker),
so they can reach us in another order than their numbers. The consumer forwards deltas
strictly in sequence order: an event that arrives early waits for the ones before it.
Pub/sub is fire-and-forget, so a number can also go missing for good (a publisher died
between numbering and sending, a subscriber connection dropped). A watchdog checks once
per `GAP_WAIT` seconds: a number that was known one check earlier (an early event, or the
Redis counter when nothing is waiting) but still has not been forwarded means a loss, and
the consumer sends a fresh snapshot and continues from it. A lost *last* event is caught
the same way, through the counter. A client thus sees a snapshot, then deltas S+1, S+2, …
without gaps, and possibly a later snapshot that replaces everything it held.

Redis restarts. Events published while Redis is down are lost, and a Redis that keeps
nothing on disk restarts every counter at zero, so numbers already forwarded come again
for new changes. The subscription itself survives (the layer reconnects), so the
watchdog also compares Redis's `run_id` (new at every start) with the one read before the
last snapshot, and treats a failing Redis call the same way: a fresh snapshot once Redis
answers again.

Client rules (implemented in static/js/run.js):

* A snapshot replaces all state.
* A node delta is applied only if its `version` (states.state_version) is >= the version
  held for that node run: events from different workers can arrive out of order, and a
  duplicate of a snapshot row must not move a node run backwards. Unknown node runs (a
  new loop iteration) are added.
* A run delta never moves a finished run back to pending/running.
* Log lines are kept by id, so a line that is both in the snapshot and a delta shows once.
* On a gap in `seq` (this consumer never sends one, but a client must not trust the wire
  blindly) wait briefly for the missing number; if it is still missing, reconnect for a
  fresh snapshot.

Access: the session user (AuthMiddlewareStack) must be able to see the run's pipeline
(`services.visible_pipelines`). Otherwise the socket is accepted and closed at once with
4401 (not logged in) or 4403 (not allowed, or no such run), so a browser learns why and
does not retry.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
import redis

from pipelines import services
from pipelines.engine import events
from pipelines.models import Run

#: Period of the watchdog: a missing number is given between one and two periods to arrive.
GAP_WAIT = 1.0
#: When nothing is waiting, the watchdog asks the Redis counter every this many periods.
IDLE_CHECK_PERIODS = 5
#: More early events than this (a client far behind) resynchronises at once.
MAX_EARLY = 10_000

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def may_see_run(user, run_id: int) -> bool:
    return Run.objects.filter(pk=run_id, pipeline__in=services.visible_pipelines(user)).exists()


def sequence_and_server(run_id: int) -> tuple[int, str]:
    """The run's sequence and Redis's `run_id` (a new one means Redis restarted, and events
    may have been lost), in one round trip."""
    with events.redis_client().pipeline(transaction=False) as pipe:
        pipe.get(events.sequence_key(run_id))
        pipe.info("server")
        value, info = pipe.execute()
    return int(value) if value else 0, info["run_id"]


def snapshot(run_id: int) -> tuple[dict[str, Any] | None, str]:
    """Steps 2 and 3 of the module docstring: the sequence first, then the database. Returns
    the snapshot (None if the run no longer exists) and Redis's `run_id` read with it."""
    seq, server = sequence_and_server(run_id)
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return None, server
    return {"type": "snapshot", "seq": seq, **events.run_state(run)}, server


class RunConsumer(AsyncJsonWebsocketConsumer):
    """A thin adapter: access check, snapshot, in-order forwarding of the run's events."""

    group: str | None = None
    watchdog: asyncio.Task | None = None

    async def connect(self):
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(may_see_run)(user, self.run_id):
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.seq: int | None = None  # the last number the client has; None before the snapshot
        self.early: dict[int, dict] = {}  # events waiting for their predecessors (or the snapshot)
        self.lock = asyncio.Lock()
        self.redis_server: str | None = None  # Redis's run_id, read before the last snapshot
        self.redis_lost = False  # a Redis call failed: events may be lost, resync when it answers
        self.group = events.group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # Step 1 ends when this marker comes back through the group (run_subscribed).
        await self.channel_layer.group_send(self.group, {"type": "run.subscribed", "channel": self.channel_name})
        self.watchdog = asyncio.create_task(self._watch())

    async def _refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code):
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """Clients send nothing; anything they do send is ignored."""

    # --- group messages -----------------------------------------------------------------

    async def run_subscribed(self, message: dict) -> None:
        if message.get("channel") == self.channel_name:
            async with self.lock:
                if self.seq is None:
                    await self._send_snapshot()

    async def run_events(self, message: dict) -> None:
        first = message["first_seq"]
        await self._receive({first + offset: event for offset, event in enumerate(message["events"])})

    async def _receive(self, numbered: dict[int, dict]) -> None:
        async with self.lock:
            for seq, event in numbered.items():
                if self.seq is None or seq > self.seq:
                    self.early[seq] = event
            if self.seq is None:
                return
            if len(self.early) > MAX_EARLY:
                await self._send_snapshot()
            else:
                await self._forward_in_order()

    # --- snapshot, order, losses --------------------------------------------------------

    async def _send_snapshot(self) -> None:
        data, self.redis_server = await database_sync_to_async(snapshot)(self.run_id)
        self.redis_lost = False
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

    async def _watch(self) -> None:
        """Resynchronise when a number known to exist one period ago was still not forwarded
        (or the marker of step 1 never came back)."""
        owed = 0
        periods = 0
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(GAP_WAIT)
                periods += 1
                async with self.lock:
                    try:
                        if self.seq is None or owed > self.seq or self.redis_lost:
                            await self._send_snapshot()
                            owed = 0
                            continue
                        owed = max(self.early, default=0)
                        if periods % IDLE_CHECK_PERIODS == 0:
                            counter, server = await sync_to_async(sequence_and_server, thread_sensitive=False)(
                                self.run_id
                            )
                            if server != self.redis_server:  # Redis restarted
                                await self._send_snapshot()
                                owed = 0
                                continue
                            owed = owed or counter
                    except (redis.RedisError, OSError):
                        self.redis_lost = True
