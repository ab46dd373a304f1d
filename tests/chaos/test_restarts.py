"""Restarts under load: Redis (embedded and external), the web server and beat, each killed
with SIGKILL while runs are going, then started again. Nothing may be lost: every run
finishes, every node's effect happens once, live clients end with the final state, and no
schedule fires twice.

The tests run on their own Redis with their own web server, worker and beat on it
(restart_support): the embedded kind shared by this module, the external one for its test.
The suite's Redis and session worker are never touched. Timings are polled with generous
deadlines; nothing here asserts on how long something took.
"""

from __future__ import annotations

from collections import Counter
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
import re
import time

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
import pytest
import redis
from rest_framework.authtoken.models import Token
from websockets.exceptions import InvalidHandshake

from pipelines import schedules
from pipelines.engine.states import NodeState, RunState
from pipelines.models import NodeRun, Run, Schedule
from tests.chaos.restart_support import (
    SYSTEM_REDIS,
    PrivateRedis,
    Stack,
    WebSocket,
    fires_logged,
    snapshot,
)
from tests.engine.test_basic_runs import edge, step
from tests.engine.test_live import Reconstruction, database_states, session_cookie
from tests.factories import create_pipeline
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

#: Each node sleeps this long, so a restart lands while one runs.
NODE_SLEEP = 1.0
NODES = ("a", "b", "c", "d", "e")
#: Runs started together in each test.
RUNS = 3
#: Generous: a busy 2-core machine must not fail a correct run.
FINISH_TIMEOUT = 90


def fan_document(marker: Path) -> dict:
    """a → (b, c) → d → e; each node sleeps, then appends `run|node|` to the marker file."""
    return {
        "name": "restarts",
        "nodes": [step(key, sleep=NODE_SLEEP, marker_file=str(marker)) for key in NODES],
        "edges": [edge(a, b) for a, b in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e"))],
    }


@pytest.fixture(scope="module")
def embedded(django_db_setup, tmp_path_factory):
    """The embedded Redis (as `manage.py up` runs it), with daphne and a worker on it, shared
    by the tests of this module; each test gets its own beat (see `stack`)."""
    base = tmp_path_factory.mktemp("chaos-embedded")
    server = PrivateRedis(base / "redis", "embedded")
    stack = Stack(server, base)
    try:  # a process left behind would serve the next tests' database from its own Redis
        server.start()
        stack.start(beat=False)
        yield stack
    finally:
        stack.kill_all()
        server.stop()


@pytest.fixture
def stack(embedded, transactional_db):
    """The shared stack, whatever a previous test killed started again, and a fresh beat (the
    database, its schedule entries included, is emptied between tests)."""
    if embedded.worker.popen.poll() is not None:
        embedded.start_worker()
    if embedded.web.popen.poll() is not None:
        embedded.start_web()
    embedded.start_beat()
    yield embedded
    if not embedded.beat.log.closed:
        embedded.kill9(embedded.beat)


@pytest.fixture
def external(django_db_setup, transactional_db, tmp_path):
    """An external Redis given as REDIS_URL (Debian's redis-server with its own config), with
    daphne, a worker and beat on it."""
    if not SYSTEM_REDIS.exists():
        pytest.skip(f"{SYSTEM_REDIS} is missing: apt-get install redis-server")
    server = PrivateRedis(tmp_path / "redis", "external")
    stack = Stack(server, tmp_path)
    try:
        server.start()
        stack.start()
        yield stack
    finally:
        stack.kill_all()
        server.stop()


def start_runs(stack: Stack, user, pipeline, count: int) -> list[int]:
    """Through the API of the live web server, as a client would."""
    token = Token.objects.get_or_create(user=user)[0].key
    with stack.api(token) as api:
        answers = [api.post(f"/api/pipelines/{pipeline.pk}/runs/", json={}) for _ in range(count)]
    assert all(answer.status_code == 201 for answer in answers), [answer.text for answer in answers]
    return [answer.json()["id"] for answer in answers]


def watched_runs(stack: Stack, user, tmp_path: Path) -> tuple[Path, str, list[int], Watcher]:
    """RUNS runs of the fan pipeline (their effects written to the returned marker file),
    started through the API, and a live client of the first one (with its session cookie)."""
    marker = tmp_path / "effects.txt"
    pipeline = create_pipeline(user, fan_document(marker))
    cookie = session_cookie(user)
    run_ids = start_runs(stack, user, pipeline, RUNS)
    return marker, cookie, run_ids, Watcher(stack.base_url, run_ids[0], cookie)


def running_node_runs(run_ids: list[int]) -> list[int]:
    return list(NodeRun.objects.filter(run_id__in=run_ids, state=NodeState.RUNNING).values_list("pk", flat=True))


def all_finished(run_ids: list[int]) -> bool:
    return not Run.objects.filter(pk__in=run_ids).exclude(state__in=RunState.FINISHED).exists()


def assert_nothing_lost(run_ids: list[int], marker: Path) -> None:
    """Every run succeeded, every node succeeded, and each node's effect happened once."""
    wait_until(lambda: all_finished(run_ids), FINISH_TIMEOUT, f"runs {run_ids} to finish")
    states = dict(Run.objects.filter(pk__in=run_ids).values_list("pk", "state"))
    assert states == dict.fromkeys(run_ids, RunState.SUCCEEDED), Run.objects.filter(pk__in=run_ids).values("error")
    node_states = Counter(NodeRun.objects.filter(run_id__in=run_ids).values_list("state", flat=True))
    assert node_states == {NodeState.SUCCEEDED: len(run_ids) * len(NODES)}
    effects = Counter(tuple(line.split("|")[:2]) for line in marker.read_text().splitlines())
    assert effects == {(str(run_id), key): 1 for run_id in run_ids for key in NODES}


class Watcher:
    """A live client following a run as static/js/run.js does: snapshots replace the model,
    deltas apply in order with its rules, a closed socket means reconnect for a snapshot."""

    def __init__(self, base_url: str, run_id: int, cookie: str):
        self.base_url, self.run_id, self.cookie = base_url, run_id, cookie
        self.model: Reconstruction | None = None
        self.snapshots = self.deltas = self.reconnects = 0
        self.socket = self._connect()
        first = self.socket.receive()
        assert first is not None and first["type"] == "snapshot", first
        self._handle(first)

    def _connect(self) -> WebSocket:
        return WebSocket(self.base_url, f"/ws/runs/{self.run_id}/", self.cookie)

    def _handle(self, message: dict) -> None:
        if message["type"] == "snapshot":
            self.model = Reconstruction(message)
            self.snapshots += 1
        elif self.model is not None and message["seq"] > self.model.seq:
            self.model.apply(message)
            self.deltas += 1

    def follow(self, timeout: float) -> Reconstruction:
        """Until the model shows the run and all its node runs finished."""
        deadline = time.monotonic() + timeout
        while self.model is None or not self.model.finished():
            left = deadline - time.monotonic()
            assert left > 0, f"the live client of run {self.run_id} is stuck at {self.model and self.model.states()}"
            if self.socket is None:
                time.sleep(0.5)  # run.js backs off before reconnecting
                with contextlib.suppress(OSError, InvalidHandshake):  # server down, or refused for now
                    self.socket = self._connect()
                    self.reconnects += 1
                continue
            try:
                message = self.socket.receive(timeout=left)
            except TimeoutError:
                continue
            if message is None:
                self.close()
                continue
            self._handle(message)
        return self.model

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None


def assert_snapshot_shows_the_end(stack: Stack, run_id: int, cookie: str) -> None:
    """A client connecting now gets the finished run with every node's final state."""
    fresh = Reconstruction(snapshot(stack.base_url, run_id, cookie))
    assert fresh.finished()
    assert fresh.run["state"] == RunState.SUCCEEDED
    assert fresh.states() == database_states(run_id)[1]
    assert {key for key, _ in fresh.states()} == set(NODES)


# --- Redis ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["embedded", "external"])
def test_runs_finish_when_redis_restarts_mid_run(kind, request, transactional_db, alice, tmp_path):
    """Redis killed while nodes run, kept down until they have finished (so the messages for
    the next nodes cannot be sent), then started again on the same port."""
    stack = request.getfixturevalue("stack" if kind == "embedded" else "external")
    marker, cookie, run_ids, watcher = watched_runs(stack, alice, tmp_path)
    try:
        running = wait_until(lambda: running_node_runs(run_ids), 30, "a node to run")
        stack.redis.restart(
            until=lambda: not NodeRun.objects.filter(pk__in=running, state=NodeState.RUNNING).exists(), at_most=10
        )

        assert_nothing_lost(run_ids, marker)
        # The client that watched through the restart ends with what the database holds.
        model = watcher.follow(timeout=30)
        assert model.run["state"] == RunState.SUCCEEDED
        assert model.states() == database_states(run_ids[0])[1]
        # Events around the restart are lost for good: it caught up from a fresh snapshot.
        assert watcher.snapshots >= 2
    finally:
        watcher.close()
    for run_id in run_ids:
        assert_snapshot_shows_the_end(stack, run_id, cookie)
    print(
        f"\n{kind} redis restarted: {len(run_ids)} runs x {len(NODES)} nodes succeeded; live client: "
        f"{watcher.snapshots} snapshots, {watcher.deltas} deltas, {watcher.reconnects} reconnects"
    )


# --- the web server ------------------------------------------------------------------------------


def test_runs_finish_when_the_web_server_is_killed_mid_run(stack, alice, tmp_path):
    marker, cookie, run_ids, watcher = watched_runs(stack, alice, tmp_path)
    try:
        wait_until(lambda: running_node_runs(run_ids), 30, "a node to run")
        stack.kill9(stack.web)
        assert all(not Run.objects.get(pk=run_id).finished_at for run_id in run_ids), "too late: runs already over"
        stack.start_web()

        assert_nothing_lost(run_ids, marker)
        token = Token.objects.get(user=alice).key
        with stack.api(token) as api:
            for run_id in run_ids:
                answer = api.get(f"/api/runs/{run_id}/")
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["state"] == RunState.SUCCEEDED
                assert {row["key"]: row["state"] for row in body["node_runs"]} == dict.fromkeys(
                    NODES, NodeState.SUCCEEDED
                )
        model = watcher.follow(timeout=30)  # its server died under it: it reconnected
        assert model.run["state"] == RunState.SUCCEEDED
        assert watcher.reconnects >= 1
    finally:
        watcher.close()
    for run_id in run_ids:
        assert_snapshot_shows_the_end(stack, run_id, cookie)


# --- every process --------------------------------------------------------------------------


def test_a_wait_survives_a_kill_9_of_every_process(stack, alice, tmp_path):
    """Redis (the embedded one keeps nothing: the timer's delayed message is gone with it),
    the web server, beat and the worker are all killed while a Wait is pending. Started again
    after the timer fell due, the sweeper resumes it from the database alone, and the run
    ends with each node executed once."""
    marker = tmp_path / "effects.txt"
    document = {
        "name": "durable wait",
        "nodes": [
            step("before", marker_file=str(marker)),
            {"key": "pause", "type": "wait", "config": {"duration_seconds": 2}},
            step("after", marker_file=str(marker)),
        ],
        "edges": [edge("before", "pause"), edge("pause", "after")],
    }
    [run_id] = start_runs(stack, alice, create_pipeline(alice, document), 1)
    pause = NodeRun.objects.filter(run_id=run_id, node_key="pause")
    wait_until(lambda: pause.get().state == NodeState.WAITING, 30, "the wait to start")
    for process in (stack.web, stack.beat, stack.worker):
        stack.kill9(process)
    stack.redis.kill()
    time.sleep(2.5)  # the timer falls due while nothing runs
    assert pause.get().state == NodeState.WAITING

    stack.redis.start()
    stack.start()
    wait_until(lambda: all_finished([run_id]), FINISH_TIMEOUT, "the run to finish")
    assert Run.objects.get(pk=run_id).state == RunState.SUCCEEDED
    assert dict(NodeRun.objects.filter(run_id=run_id).values_list("node_key", "state")) == dict.fromkeys(
        ("before", "pause", "after"), NodeState.SUCCEEDED
    )
    effects = Counter(tuple(line.split("|")[:2]) for line in marker.read_text().splitlines())
    assert effects == {(str(run_id), "before"): 1, (str(run_id), "after"): 1}


# --- beat ------------------------------------------------------------------------------------


SENT = re.compile(r"Sending due task datamate schedule (\d+) ")


def test_beat_killed_right_after_sending_fires_starts_each_fire_once(stack, alice):
    """Beat is killed right after it sent its fires, before it saved that it did (it saves
    every few minutes), so the restarted beat sends them again. Each fire time still starts at
    most one run; a fire missed while beat was down runs only with catch_up (the daily ones,
    10 minutes late, beyond MISFIRE_GRACE); a minutely one is never late enough to be missed."""
    stack.kill9(stack.beat)  # down while the schedules come due
    worker_log_start = len(stack.worker.output())
    now = timezone.now()
    hour_ago = now - timedelta(hours=1)
    missed = (now - timedelta(minutes=10)).astimezone(UTC).replace(second=0, microsecond=0)
    daily = f"{missed.minute} {missed.hour} * * *"
    made: dict[str, Schedule] = {}
    for name, cron, catch_up in (
        ("minutely", "* * * * *", False),
        ("minutely-catch-up", "0 * * * * ?", True),  # Quartz: its shortest period is a minute too
        ("daily", daily, False),
        ("daily-catch-up", daily, True),
    ):
        pipeline = create_pipeline(alice, {"name": name, "nodes": [{"key": "only", "type": "test_step"}]}, name=name)
        schedule = schedules.create_schedule(pipeline, cron=cron, catch_up=catch_up, overlap="allow")
        # As if beat last ran an hour ago: every schedule is due the moment beat starts.
        Schedule.objects.filter(pk=schedule.pk).update(handled_through=hour_ago)
        PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(last_run_at=hour_ago)
        made[name] = schedule
    ids = {schedule.pk: name for name, schedule in made.items()}

    def sent(text: str) -> Counter:
        return Counter(ids[int(pk)] for pk in SENT.findall(text) if int(pk) in ids)

    stack.start_beat()
    first = stack.beat
    wait_until(lambda: set(sent(first.output())) == set(made), 30, "beat to send every fire")
    stack.kill9(first)
    sent_before = sent(first.output())
    restart_offset = len(first.output())
    stack.start_beat()
    # The restarted beat sends what it finds due at once; three sweeps later it has, and once
    # the queue is empty the worker has handled every fire message.
    wait_until(
        lambda: stack.beat.output()[restart_offset:].count("Sending due task datamate-sweep") >= 3,
        30,
        "the restarted beat to send its due tasks",
    )
    broker = redis.Redis.from_url(stack.redis.url)
    wait_until(lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 0, 30, "the queue to drain")
    runs = Run.objects.filter(schedule__in=made.values())
    wait_until(lambda: not runs.exclude(state__in=RunState.FINISHED).exists(), FINISH_TIMEOUT, "scheduled runs")
    resent = sent(stack.beat.output()[restart_offset:])
    # Beat saves when it sent an entry only every few minutes (after its very first send), so
    # the restarted beat sent some fires again: the duplicates this test is about.
    assert resent, "the restarted beat sent nothing again: this test no longer exercises duplicates"

    fires = [fire for fire in fires_logged(stack.worker.output()[worker_log_start:]) if fire[0] in ids]
    handled = Counter((ids[pk], due) for pk, due, _, _ in fires)
    assert max(handled.values()) == 1, f"a fire time was handled twice: {handled}"
    started = {
        name: sorted(due for pk, due, outcome, _ in fires if ids[pk] == name and outcome == "started") for name in made
    }
    outcomes = {name: [(due, outcome) for pk, due, outcome, _ in fires if ids[pk] == name] for name in made}
    # Beyond the grace: recorded as missed without catch_up, run once with it.
    assert outcomes["daily"] == [(missed.isoformat(), "missed")]
    assert outcomes["daily-catch-up"] == [(missed.isoformat(), "started")]
    # Minutely: every minute from the first fire to the last handled one started exactly once.
    for name in ("minutely", "minutely-catch-up"):
        schedule = Schedule.objects.get(pk=made[name].pk)
        first_due = datetime.fromisoformat(started[name][0])
        minutes = int((schedule.handled_through - first_due).total_seconds() // 60)
        expected = [(first_due + timedelta(minutes=n)).isoformat() for n in range(minutes + 1)]
        assert started[name] == expected, (name, outcomes[name])
    for name, schedule in made.items():
        assert runs.filter(schedule=schedule).count() == len(started[name]), name
    assert set(runs.values_list("state", flat=True)) == {RunState.SUCCEEDED}
    print(
        f"\nbeat killed after sending {dict(sent_before)}; the restarted beat sent again {dict(resent)}; "
        f"runs: { {name: len(dues) for name, dues in started.items()} }"
    )
