"""The event publisher (pipelines/engine/events.py) over the suite's real Redis channel
layer: events queued close together go out as one numbered message, and a flush sends at
once what would otherwise linger."""

import asyncio
import os
import time

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from pipelines.engine import events

#: Longer than any pause below, so that what the test sees can only come from the flush.
LONG_LINGER = 3.0


def test_events_queued_close_together_go_out_in_one_message_when_flushed(monkeypatch):
    monkeypatch.setattr(events, "LINGER_SECONDS", LONG_LINGER)
    publisher = events._Publisher()  # its own thread and queue, not the process's
    run_id = 10**12 + os.getpid()  # a group and a counter no run of the suite uses
    events.redis_client().delete(events.sequence_key(run_id))

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        group = events.group_name(run_id)
        await layer.group_add(group, channel)
        # Subscribed once a marker sent through the group comes back (as the consumer does).
        await layer.group_send(group, {"type": "marker"})
        assert (await asyncio.wait_for(layer.receive(channel), 10))["type"] == "marker"
        try:
            started = time.monotonic()
            publisher.publish(run_id, {"kind": "log", "n": 1})
            await asyncio.sleep(0.2)  # the first event lingers, waiting for more
            publisher.publish(run_id, {"kind": "log", "n": 2})
            assert await sync_to_async(publisher.flush)(10)
            flushed_after = time.monotonic() - started
            message = await asyncio.wait_for(layer.receive(channel), 10)
        finally:
            await layer.group_discard(group, channel)
        return flushed_after, message

    flushed_after, message = async_to_sync(scenario)()
    assert flushed_after < LONG_LINGER - 1  # the flush did not wait for the linger to end
    assert message == {
        "type": "run.events",
        "first_seq": 1,
        "events": [{"kind": "log", "n": 1}, {"kind": "log", "n": 2}],
    }
    assert int(events.redis_client().get(events.sequence_key(run_id))) == 2
    events.redis_client().delete(events.sequence_key(run_id))
