"""The live view of a run over the real stack: the ASGI application with session auth, the
run consumer, the suite's Redis channel layer, and a real Celery worker publishing events.

pytest-django tests are synchronous, so each test drives its websocket clients from one
async scenario run with `async_to_sync`; database calls inside it go through
`sync_to_async`. Nothing here asserts on timings.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from datamate.asgi import application
from pipelines.engine import events
from pipelines.engine.runs import start_run
from pipelines.engine.states import NodeState, RunState
from pipelines.models import NodeRun, Run
from tests.engine.conftest import wait_for_run
from tests.factories import create_pipeline

#: Generous: a slow CI machine must not fail a correct run.
RECEIVE_TIMEOUT = 30
#: The root node's sleep: the time a client has to connect before anything finishes. It
#: takes ~0.1 s; the margin is for a machine busy with other test runs.
ROOT_SLEEP = 3


def step(key, **config):
    return {"key": key, "type": "test_step", "config": config}


def edge(source, target, handle="out"):
    return {"source": source, "source_handle": handle, "target": target}


def fan_document() -> dict[str, Any]:
    """slow root → two branches (one logs, one reports progress) → join → end.

    The root sleeps, so a client that connects right after start_run sees the run begin;
    the branches run on both worker processes, so events of one run come from two
    publishers and can reach the consumer out of order.
    """
    return {
        "name": "live",
        "nodes": [
            step("root", sleep=ROOT_SLEEP),
            step("talk", log="hello"),
            step("count", sleep=0.4, progress_steps=4),
            step("join"),
            step("end", log="bye"),
        ],
        "edges": [
            edge("root", "talk"),
            edge("root", "count"),
            edge("talk", "join"),
            edge("count", "join"),
            edge("join", "end"),
        ],
    }


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def communicator(run_id: int, cookie: str | None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)


class Reconstruction:
    """What a client holds: a snapshot plus deltas, with the client rules of run.js."""

    RUN_RANK = {RunState.PENDING: 0, RunState.RUNNING: 1}

    def __init__(self, snapshot: dict[str, Any]):
        assert snapshot["type"] == "snapshot"
        self.seq = snapshot["seq"]
        self.run = snapshot["run"]
        self.node_runs = {row["id"]: row for row in snapshot["node_runs"]}
        self.logs = {log["id"]: log for log in snapshot["logs"]}

    def apply(self, message: dict[str, Any]) -> None:
        assert message["type"] == "delta", message
        assert message["seq"] == self.seq + 1, f"expected seq {self.seq + 1}, got {message['seq']}"
        self.seq = message["seq"]
        event = message["event"]
        if event["kind"] == "node":
            row = event["node_run"]
            held = self.node_runs.get(row["id"])
            if held is None or row["version"] >= held["version"]:
                self.node_runs[row["id"]] = row
        elif event["kind"] == "run":
            if self.RUN_RANK.get(event["run"]["state"], 2) >= self.RUN_RANK.get(self.run["state"], 2):
                self.run = event["run"]
        elif event["kind"] == "log":
            self.logs[event["log"]["id"]] = event["log"]
        else:
            raise AssertionError(f"unknown event {event}")

    def finished(self) -> bool:
        return self.run["state"] in RunState.FINISHED and all(
            row["state"] in NodeState.FINISHED for row in self.node_runs.values()
        )

    def states(self) -> dict[tuple[str, str], tuple[str, int]]:
        return {(row["node_key"], row["iteration"]): (row["state"], row["attempt"]) for row in self.node_runs.values()}


def database_states(run_id: int) -> tuple[str, dict[tuple[str, str], tuple[str, int]]]:
    run = Run.objects.get(pk=run_id)
    rows = NodeRun.objects.filter(run_id=run_id)
    return run.state, {(row.node_key, row.iteration): (row.state, row.attempt) for row in rows}


async def watch_until_finished(client: WebsocketCommunicator) -> tuple[dict, list[dict], Reconstruction]:
    snapshot = await client.receive_json_from(timeout=RECEIVE_TIMEOUT)
    model = Reconstruction(snapshot)
    deltas = []
    while not model.finished():
        message = await client.receive_json_from(timeout=RECEIVE_TIMEOUT)
        deltas.append(message)
        model.apply(message)
    return snapshot, deltas, model


async def refused_with(client: WebsocketCommunicator) -> int:
    """The close code of a refused connection (refused before or right after accepting)."""
    connected, code = await client.connect(timeout=RECEIVE_TIMEOUT)
    if connected:
        message = await client.receive_output(timeout=RECEIVE_TIMEOUT)
        assert message["type"] == "websocket.close", message
        code = message.get("code")
    await client.disconnect(timeout=RECEIVE_TIMEOUT)
    return code


def test_client_connected_at_the_start_sees_every_change_in_order(engine, alice):
    pipeline = create_pipeline(alice, fan_document())
    cookie = session_cookie(alice)

    async def scenario():
        run = await sync_to_async(start_run)(pipeline, user=alice)
        client = communicator(run.pk, cookie)
        connected, _ = await client.connect(timeout=RECEIVE_TIMEOUT)
        assert connected
        try:
            snapshot, deltas, model = await watch_until_finished(client)
        finally:
            await client.disconnect()
        return run, snapshot, deltas, model, await sync_to_async(database_states)(run.pk)

    run, snapshot, deltas, model, (db_run_state, db_states) = async_to_sync(scenario)()

    # The client joined while the slow root was still working: the rest happened live.
    assert snapshot["run"]["id"] == run.pk
    assert snapshot["run"]["state"] == RunState.RUNNING, f"connecting took longer than the root's {ROOT_SLEEP} s"
    snapshot_states = {row["node_key"]: row["state"] for row in snapshot["node_runs"]}
    assert set(snapshot_states) == {"root", "talk", "count", "join", "end"}
    assert snapshot_states["end"] == NodeState.PENDING
    # Deltas come strictly in sequence, right after the snapshot's number, without gaps.
    seqs = [message["seq"] for message in deltas]
    assert seqs == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(seqs)))
    # Every node that was unfinished in the snapshot reached its final state through a delta.
    live_final = {
        message["event"]["node_run"]["node_key"]
        for message in deltas
        if message["event"]["kind"] == "node" and message["event"]["node_run"]["state"] in NodeState.FINISHED
    }
    assert {key for key, state in snapshot_states.items() if state not in NodeState.FINISHED} <= live_final
    # Progress of the counting node streamed while it ran.
    assert any(
        message["event"]["kind"] == "node"
        and message["event"]["node_run"]["node_key"] == "count"
        and message["event"]["node_run"]["state"] == NodeState.RUNNING
        and message["event"]["node_run"]["progress"] > 0
        for message in deltas
    )
    # What the client reconstructed is what the database holds.
    assert model.run["state"] == db_run_state == RunState.SUCCEEDED
    assert model.states() == db_states
    assert {state for state, _ in db_states.values()} == {NodeState.SUCCEEDED}


def test_log_lines_arrive_as_deltas(engine, alice):
    pipeline = create_pipeline(alice, fan_document())
    cookie = session_cookie(alice)

    async def scenario():
        run = await sync_to_async(start_run)(pipeline, user=alice)
        client = communicator(run.pk, cookie)
        assert (await client.connect(timeout=RECEIVE_TIMEOUT))[0]
        try:
            return await watch_until_finished(client)
        finally:
            await client.disconnect()

    snapshot, deltas, model = async_to_sync(scenario)()
    assert snapshot["logs"] == []  # the root sleeps; nothing has logged yet
    logs = [message["event"]["log"] for message in deltas if message["event"]["kind"] == "log"]
    assert sorted((log["node_key"], log["level"], log["message"]) for log in logs) == [
        ("end", "info", "bye"),
        ("talk", "info", "hello"),
    ]
    ids = {row["node_key"]: row["id"] for row in model.node_runs.values()}
    assert {(log["node_key"], log["node_run"], log["iteration"]) for log in logs} == {
        ("talk", ids["talk"], ""),
        ("end", ids["end"], ""),
    }
    # The log line is stored: the server-rendered page and later snapshots show it too.
    assert sorted(model.logs) == sorted(log["id"] for log in logs)


def test_client_connecting_after_the_run_gets_a_finished_snapshot(engine, alice):
    pipeline = create_pipeline(alice, fan_document())
    run = wait_for_run(start_run(pipeline, user=alice))
    assert run.state == RunState.SUCCEEDED
    cookie = session_cookie(alice)

    async def scenario():
        client = communicator(run.pk, cookie)
        assert (await client.connect(timeout=RECEIVE_TIMEOUT))[0]
        try:
            return await client.receive_json_from(timeout=RECEIVE_TIMEOUT)
        finally:
            await client.disconnect()

    snapshot = async_to_sync(scenario)()
    model = Reconstruction(snapshot)
    assert model.finished()
    assert model.run["state"] == RunState.SUCCEEDED
    assert model.run["finished_at"]
    assert model.states() == database_states(run.pk)[1]
    assert all(row["finished_at"] for row in snapshot["node_runs"])
    assert [(log["node_key"], log["message"]) for log in snapshot["logs"]] == [("talk", "hello"), ("end", "bye")]
    # The snapshot's number covers every event the run published.
    assert snapshot["seq"] > 0


def test_other_users_and_anonymous_clients_are_refused(engine, alice, bob, staff):
    pipeline = create_pipeline(alice, {"name": "private", "nodes": [step("only")]})
    run = wait_for_run(start_run(pipeline, user=alice))
    bob_cookie, staff_cookie = session_cookie(bob), session_cookie(staff)

    async def scenario():
        codes = {
            "bob": await refused_with(communicator(run.pk, bob_cookie)),
            "anonymous": await refused_with(communicator(run.pk, None)),
            "bad session": await refused_with(communicator(run.pk, "not-a-session")),
            "no such run": await refused_with(communicator(run.pk + 1000, bob_cookie)),
        }
        # Staff see every pipeline, so they may watch it.
        client = communicator(run.pk, staff_cookie)
        assert (await client.connect(timeout=RECEIVE_TIMEOUT))[0]
        try:
            staff_snapshot = await client.receive_json_from(timeout=RECEIVE_TIMEOUT)
        finally:
            await client.disconnect()
        return codes, staff_snapshot

    codes, staff_snapshot = async_to_sync(scenario)()
    assert codes == {"bob": 4403, "anonymous": 4401, "bad session": 4401, "no such run": 4403}
    assert staff_snapshot["type"] == "snapshot"
    assert staff_snapshot["run"]["state"] == RunState.SUCCEEDED


def test_consumer_forwards_in_order_and_resyncs_after_a_lost_event(transactional_db, alice):
    """Drives the consumer through the real channel layer with numbered events, as the
    publisher sends them: early ones wait for their predecessors, and a number that never
    comes, or a last one that never comes, makes the consumer send a fresh snapshot."""
    pipeline = create_pipeline(alice, {"name": "quiet", "nodes": [step("only")]})
    run = Run.objects.create(pipeline=pipeline, version=pipeline.version, spec={}, state=RunState.RUNNING)
    row = NodeRun.objects.create(run=run, node_key="only", state=NodeState.PENDING)
    cookie = session_cookie(alice)
    counter = events.redis_client()

    def node_event(state: str) -> dict[str, Any]:
        row.state = state
        return {"kind": "node", "node_run": events.node_run_payload(row)}

    async def publish(first_seq: int, batch: list[dict]) -> None:
        message = {"type": "run.events", "first_seq": first_seq, "events": batch}
        await get_channel_layer().group_send(events.group_name(run.pk), message)

    async def scenario():
        client = communicator(run.pk, cookie)
        assert (await client.connect(timeout=RECEIVE_TIMEOUT))[0]
        try:
            snapshot = await client.receive_json_from(timeout=RECEIVE_TIMEOUT)
            base = snapshot["seq"]
            await sync_to_async(counter.incrby)(events.sequence_key(run.pk), 3)
            # Number 3 arrives before 1 and 2; an old number (already in the snapshot) is dropped.
            await publish(base + 3, [node_event(NodeState.SUCCEEDED)])
            await publish(base, [node_event(NodeState.PENDING)])
            await publish(base + 1, [node_event(NodeState.READY), node_event(NodeState.RUNNING)])
            ordered = [await client.receive_json_from(timeout=RECEIVE_TIMEOUT) for _ in range(3)]
            # Numbers 4 and 5 are taken, only 5 is sent: 4 is lost for good.
            await sync_to_async(counter.incrby)(events.sequence_key(run.pk), 2)
            await publish(base + 5, [{"kind": "run", "run": {**snapshot["run"], "state": RunState.SUCCEEDED}}])
            resync = await client.receive_json_from(timeout=RECEIVE_TIMEOUT)
            # The last event of a run is lost: nothing follows to reveal the gap, but the
            # watchdog compares with the counter.
            await sync_to_async(counter.incrby)(events.sequence_key(run.pk), 1)
            last = await client.receive_json_from(timeout=RECEIVE_TIMEOUT)
            return base, ordered, resync, last
        finally:
            await client.disconnect()

    base, ordered, resync, last = async_to_sync(scenario)()
    assert [(m["type"], m["seq"], m["event"]["node_run"]["state"]) for m in ordered] == [
        ("delta", base + 1, NodeState.READY),
        ("delta", base + 2, NodeState.RUNNING),
        ("delta", base + 3, NodeState.SUCCEEDED),
    ]
    # The fresh snapshot covers everything up to the counter, so number 5 is not sent again.
    assert resync["type"] == "snapshot"
    assert resync["seq"] == base + 5
    assert resync["node_runs"][0]["id"] == row.pk
    assert (last["type"], last["seq"]) == ("snapshot", base + 6)
