"""Engine overhead: our engine against plain Celery, side by side, in the same run.

    .venv/bin/python bench/engine_overhead.py [--runs 5] [--json FILE]

Self-contained: a fresh database (a temp SQLite file, or with DATABASE_URL a PostgreSQL
database `datamate_bench_<pid>` created and dropped here), a private redis-server (unless
REDIS_URL is set), and ONE Celery worker (prefork, concurrency 2) that runs both our
engine's tasks and the plain Celery baseline tasks (bench/baseline_tasks.py). Everything
it starts is stopped at the end, also on error or Ctrl-C. See bench/README.md.

Workloads (node bodies are no-ops returning a small dict):
  W1  a chain of 50 nodes, each receiving the previous node's result
  W2  50 independent nodes, then one join node receiving all 50 results
  W3  a pipeline of one node
Ours: from calling start_run() here to this process learning that the run succeeded (the
run's `succeeded` event, received through the channel layer like the live run page does).
Celery: chain(50) / chord(group(50), join) / one task, the client waiting on the result.
Live events: for each `succeeded` node event of W1, arrival here minus the node run's
`finished_at` (stamped in the worker just before the state change is written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
import itertools
import json
import os
from pathlib import Path
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHAIN_LENGTH = 50
FAN_OUT = 50
#: Seconds one sample may take before the benchmark gives up.
WAIT_TIMEOUT = float(os.environ.get("BENCH_WAIT_TIMEOUT", 120))
SETTLE = 0.05  # pause between samples, so one sample's tail does not overlap the next

TARGETS = {"w1_ratio": 2.0, "w2_ratio": 2.0, "w3_ms": 10.0, "event_p95_ms": 50.0}


# --- the processes this benchmark owns ------------------------------------------------


def configure_environment(var_dir: Path, stack: contextlib.ExitStack) -> str:
    """Set the env the settings read, for this process and the worker; return the db kind.

    Django's settings must not have been read yet: check_settings() verifies they were not."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "datamate.settings"
    os.environ["DATAMATE_VAR_DIR"] = str(var_dir)
    os.environ["DATAMATE_NODE_TYPE_MODULES"] = "bench.node_types"
    os.environ["DEBUG"] = "0"  # DEBUG records every query: not what production runs
    os.environ["PYTHONUNBUFFERED"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = create_postgres_database(os.environ["DATABASE_URL"], stack)
        database = "postgresql"
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'bench.sqlite3'}"
        database = "sqlite"
    if not os.environ.get("REDIS_URL"):
        from datamate.embedded_redis import start_embedded_redis

        server = start_embedded_redis(var_dir / "redis")
        stack.callback(server.stop)
        os.environ["REDIS_URL"] = server.url
    return database


def check_settings() -> None:
    """Refuse to run on another database or broker than the ones configured above: had
    anything read the settings earlier, this process would enqueue where no worker of
    ours listens (e.g. on a Redis the machine uses for something else)."""
    from django.conf import settings
    import environ

    from datamate.celery import app

    expected_db = environ.Env.db_url_config(os.environ["DATABASE_URL"])["NAME"]
    actual = (settings.DATABASES["default"]["NAME"], settings.CELERY_BROKER_URL, app.conf.broker_url)
    if actual != (expected_db, os.environ["REDIS_URL"], os.environ["REDIS_URL"]):
        raise RuntimeError(
            f"settings were read before the benchmark configured them: database {actual[0]}, "
            f"broker {actual[1]} / {actual[2]}; expected {expected_db}, {os.environ['REDIS_URL']}"
        )


def create_postgres_database(url: str, stack: contextlib.ExitStack) -> str:
    """A fresh database on the server `url` names; dropped when the stack closes. The URL
    keeps its query (e.g. `?conn_max_age=60`), which Django reads. The database named in the
    URL need not exist: like Django's test runner, this connects to `postgres` to create it."""
    import environ
    import psycopg

    config = environ.Env.db_url_config(url)
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit(f"DATABASE_URL must name a PostgreSQL database, not {config['ENGINE']}")
    server = {
        "dbname": "postgres",
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
    }
    name = f"datamate_bench_{os.getpid()}"
    with psycopg.connect(autocommit=True, **server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop():
        from django.db import connections

        connections.close_all()
        with psycopg.connect(autocommit=True, **server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class Worker:
    """One `celery worker` (prefork, `concurrency` pool processes, 2 by default) in its own
    process group."""

    def __init__(self, log_path: Path, concurrency: int = 2):
        self.log_path = log_path
        self._start(concurrency)

    def _start(self, concurrency: int) -> None:
        from datamate.embedded_redis import die_with_parent

        self.concurrency = concurrency
        self.log = self.log_path.open("ab")
        self._log_start = self.log.tell()  # a restarted worker appends: read its own lines only
        command = [
            sys.executable, "-m", "celery", "-A", "bench.baseline_tasks", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency), "-l", "info",
            "-n", f"bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(os.environ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def restart(self, concurrency: int) -> None:
        """Stop this worker and start a fresh one with `concurrency` pool processes."""
        self.stop()
        self._start(concurrency)
        self.wait_ready()

    def output(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the worker exited:\n{self.output()[-3000:]}")
            text = self.output()
            if "ready." in text:
                missing = [name for name in ("pipelines.tasks.execute_node", "bench.noop") if name not in text]
                if missing:
                    raise RuntimeError(f"the worker lacks the tasks {missing}:\n{text[-3000:]}")
                return
            time.sleep(0.1)
        raise RuntimeError(f"the worker did not become ready:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the whole group (pool children too), SIGKILL if it lingers."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Pool children that outlived their parent are still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.log.close()


# --- a websocket-like subscriber of the run's group -------------------------------------


@dataclass
class Arrival:
    at: float  # time.time() when the message reached this process
    seq: int
    event: dict[str, Any]


@dataclass
class Subscription:
    run_id: int
    arrivals: list[Arrival] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)
    finished_at: float | None = None  # arrival time of the run's final event


class Subscriber:
    """Joins `run-<id>` groups through the project's channel layer, as the run page's
    consumer does, and timestamps every message on arrival. Its own event loop runs in a
    thread. Reads single events (`run.event`, `seq`) and batches (`run.events`, `first_seq`)."""

    def __init__(self):
        from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

        # A fresh instance of the configured backend: not shared with this process's publisher.
        self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-subscriber", daemon=True)
        self.thread.start()
        self.channel = self._call(self.layer.new_channel())
        self.subscriptions: dict[int, Subscription] = {}
        self._receiving = asyncio.run_coroutine_threadsafe(self._receive(), self.loop)

    def _call(self, coroutine, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _receive(self) -> None:
        import redis

        while True:
            try:
                message = await self.layer.receive(self.channel)
            except redis.TimeoutError:
                # redis-py 8 times reads out after 5 s by default, the time channels_redis'
                # core layer blocks waiting: an idle receive raises. Just receive again.
                continue
            at = time.time()
            if message.get("type") == "run.events":
                first = message.get("first_seq", 0)
                batch = [(first + index, event) for index, event in enumerate(message.get("events", ()))]
            else:
                continue
            for seq, event in batch:
                self._arrived(at, seq, event)

    def _arrived(self, at: float, seq: int, event: dict[str, Any]) -> None:
        from pipelines.engine.states import RunState

        # Node and log payloads carry no run id; event_latencies() keeps the node events of
        # the sample's own node runs.
        run_id = event["run"]["id"] if event.get("kind") == "run" else None
        for subscription in list(self.subscriptions.values()):
            if run_id is not None and run_id != subscription.run_id:
                continue
            subscription.arrivals.append(Arrival(at, seq, event))
            if run_id is not None and event["run"]["state"] in RunState.FINISHED:
                subscription.finished_at = at
                subscription.finished.set()

    async def _close_connections(self) -> None:
        # The pub/sub layer resolves attributes per running loop, so look them up in here.
        closing = getattr(self.layer, "close_pools", None) or getattr(self.layer, "flush", None)
        if closing is not None:
            await closing()

    def failed(self) -> BaseException | None:
        return self._receiving.exception() if self._receiving.done() and not self._receiving.cancelled() else None

    def subscribe(self, run_id: int) -> Subscription:
        from pipelines.engine.events import group_name

        subscription = self.subscriptions[run_id] = Subscription(run_id)
        self._call(self.layer.group_add(group_name(run_id), self.channel))
        return subscription

    def unsubscribe(self, run_id: int) -> None:
        from pipelines.engine.events import group_name

        self._call(self.layer.group_discard(group_name(run_id), self.channel))
        self.subscriptions.pop(run_id, None)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._receiving.cancel)
        with contextlib.suppress(Exception):
            self._call(self._close_connections(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --- the workloads ------------------------------------------------------------------------


def noop_node(key: str) -> dict[str, Any]:
    return {"key": key, "type": "noop", "config": {}}


def edge(source: str, target: str) -> dict[str, Any]:
    return {"source": source, "source_handle": "out", "target": target}


def documents() -> dict[str, dict[str, Any]]:
    chain = [f"n{i}" for i in range(CHAIN_LENGTH)]
    branches = [f"b{i}" for i in range(FAN_OUT)]
    return {
        "w1": {
            "name": "bench-w1-chain",
            "nodes": [noop_node(key) for key in chain],
            "edges": [edge(a, b) for a, b in itertools.pairwise(chain)],
        },
        "w2": {
            "name": "bench-w2-fan-out",
            "nodes": [*(noop_node(key) for key in branches), noop_node("join")],
            "edges": [edge(key, "join") for key in branches],
        },
        "w3": {"name": "bench-w3-one", "nodes": [noop_node("only")], "edges": []},
    }


@dataclass
class OursSample:
    ms: float  # start_run() called → this process received the run's succeeded event
    committed_ms: float  # start_run() called → the worker stamped the run finished (Run.finished_at)
    start_run_ms: float  # how long start_run() itself took in this process
    subscription: Subscription
    node_run_ids: set[int]


class Bench:
    def __init__(self, worker: Worker, subscriber: Subscriber):
        from django.contrib.auth import get_user_model

        from pipelines import services

        self.worker = worker
        self.subscriber = subscriber
        self.user = get_user_model().objects.create_user("bench", password="bench-password-1")
        self.pipelines = {
            name: services.import_pipeline(owner=self.user, document=document) for name, document in documents().items()
        }

    # ours

    def run_ours(self, workload: str) -> OursSample:
        from django.db.models import Max

        from pipelines.engine.runs import start_run
        from pipelines.models import NodeRun, Run

        # Join the run's group before the run exists, so no event can pass us by: ids are
        # handed out in order and nothing else writes runs to this database.
        expected = (Run.objects.aggregate(last=Max("id"))["last"] or 0) + 1
        subscription = self.subscriber.subscribe(expected)
        started = time.time()
        run = start_run(self.pipelines[workload], user=self.user)
        returned = time.time()
        try:
            if run.pk != expected:
                raise RuntimeError(f"expected run id {expected}, got {run.pk}: is another process writing runs?")
            self._wait(subscription, run)
        finally:
            self.subscriber.unsubscribe(expected)
        run.refresh_from_db()
        if run.state != "succeeded":
            raise RuntimeError(f"run {run.pk} of {workload} ended {run.state}: {run.error}")
        # Not timed: check that the workload did what it claims (inputs reached each node).
        rows = NodeRun.objects.filter(run=run).values_list("id", "node_key", "output")
        inputs = {key: (output or {}).get("inputs") for _, key, output in rows}
        expected_inputs = {"w1": {"n0": 0, "n1": 1, f"n{CHAIN_LENGTH - 1}": 1}, "w2": {"b0": 0, "join": FAN_OUT}}
        for key, count in expected_inputs.get(workload, {}).items():
            if inputs.get(key) != count:
                raise RuntimeError(f"run {run.pk}: node {key} received {inputs.get(key)} inputs, not {count}")
        return OursSample(
            node_run_ids={node_run_id for node_run_id, _, _ in rows},
            ms=(subscription.finished_at - started) * 1000,
            committed_ms=(run.finished_at.timestamp() - started) * 1000,
            start_run_ms=(returned - started) * 1000,
            subscription=subscription,
        )

    def _wait(self, subscription: Subscription, run) -> None:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while not subscription.finished.wait(0.5):
            if self.subscriber.failed():
                raise RuntimeError("the subscriber stopped") from self.subscriber.failed()
            if not self.worker.alive():
                raise RuntimeError(f"the worker died:\n{self.worker.output()[-3000:]}")
            if time.monotonic() > deadline:
                from pipelines.models import NodeRun

                states = dict(NodeRun.objects.filter(run=run).values_list("node_key", "state"))
                run.refresh_from_db()
                raise RuntimeError(f"no end of run {run.pk} after {WAIT_TIMEOUT:g} s: run {run.state}, nodes {states}")

    # plain Celery

    def run_celery(self, workload: str) -> float:
        from celery import chain, chord

        from bench.baseline_tasks import join, noop

        started = time.perf_counter()
        if workload == "w1":
            result = chain(noop.s(None), *(noop.s() for _ in range(CHAIN_LENGTH - 1))).apply_async()
        elif workload == "w2":
            result = chord([noop.si() for _ in range(FAN_OUT)], join.s()).apply_async()
        else:
            result = noop.delay()
        value = result.get(timeout=WAIT_TIMEOUT)
        elapsed = (time.perf_counter() - started) * 1000
        if not value.get("ok"):
            raise RuntimeError(f"the baseline's {workload} returned {value!r}")
        return elapsed


def event_latencies(samples: list[OursSample]) -> tuple[list[float], list[float], int]:
    """(succeeded-event latencies, running-event latencies, arrivals out of seq order), in ms.

    A node event's own time is the node run's `finished_at` (for `succeeded`) or `started_at`
    (for `running`), both stamped in the worker just before the change is written.
    """
    succeeded, running, out_of_order = [], [], 0
    for sample in samples:
        highest = 0
        for arrival in sample.subscription.arrivals:
            if arrival.seq < highest:
                out_of_order += 1
            highest = max(highest, arrival.seq)
            node = arrival.event.get("node_run") if arrival.event.get("kind") == "node" else None
            if not node or node["id"] not in sample.node_run_ids:
                continue
            if node["state"] == "succeeded" and node["finished_at"]:
                stamped = datetime.fromisoformat(node["finished_at"]).timestamp()
                succeeded.append((arrival.at - stamped) * 1000)
            elif node["state"] == "running" and node["started_at"]:
                stamped = datetime.fromisoformat(node["started_at"]).timestamp()
                running.append((arrival.at - stamped) * 1000)
    return succeeded, running, out_of_order


def percentile(values: list[float], pct: float) -> float:
    if not values:
        raise RuntimeError("no samples: nothing was measured")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(pct) - 1]


# --- main -----------------------------------------------------------------------------------


def measure(bench: Bench, runs: int, progress) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # A fan-out first, so that both pool processes have imported, connected and cached what
    # they need before anything is timed (a chain runs in one of them only).
    progress("warm-up of both pool processes")
    bench.run_ours("w2")
    bench.run_celery("w2")
    for workload in ("w1", "w2", "w3"):
        progress(f"{workload}: warm-up")
        bench.run_ours(workload)
        bench.run_celery(workload)
        ours: list[OursSample] = []
        celery: list[float] = []
        for index in range(runs):
            # Interleaved, so drift on a shared machine hits both sides alike.
            time.sleep(SETTLE)
            ours.append(bench.run_ours(workload))
            time.sleep(SETTLE)
            celery.append(bench.run_celery(workload))
            progress(f"{workload}: run {index + 1}/{runs}: ours {ours[-1].ms:.1f} ms, Celery {celery[-1]:.1f} ms")
        results[workload] = {
            "ours": statistics.median(s.ms for s in ours),
            "ours_committed": statistics.median(s.committed_ms for s in ours),
            "start_run": statistics.median(s.start_run_ms for s in ours),
            "celery": statistics.median(celery),
            "samples": ours,
        }
    return results


def source_version() -> str:
    """The commit measured (with `-dirty` for uncommitted changes), to compare runs over time."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return described.stdout.strip() or "unknown"


def report(results: dict[str, Any], database: str, runs: int) -> dict[str, Any]:
    succeeded, running, out_of_order = event_latencies(results["w1"]["samples"])
    if not succeeded:
        raise RuntimeError("no live event reached the subscriber")
    figures = {
        "database": database,
        "runs": runs,
        "source": source_version(),
        "w1_ms": results["w1"]["ours"],
        "w2_ms": results["w2"]["ours"],
        "w3_ms": results["w3"]["ours"],
        "w1_celery_ms": results["w1"]["celery"],
        "w2_celery_ms": results["w2"]["celery"],
        "w3_celery_ms": results["w3"]["celery"],
        "w1_ratio": results["w1"]["ours"] / results["w1"]["celery"],
        "w2_ratio": results["w2"]["ours"] / results["w2"]["celery"],
        "w3_ratio": results["w3"]["ours"] / results["w3"]["celery"],
        "per_node_ms": results["w1"]["ours"] / CHAIN_LENGTH,
        "per_node_celery_ms": results["w1"]["celery"] / CHAIN_LENGTH,
        "event_p50_ms": percentile(succeeded, 50),
        "event_p95_ms": percentile(succeeded, 95),
        "event_count": len(succeeded),
        "event_running_p50_ms": percentile(running, 50),
        "event_running_p95_ms": percentile(running, 95),
        "events_out_of_order": out_of_order,
        "w1_committed_ms": results["w1"]["ours_committed"],
        "w2_committed_ms": results["w2"]["ours_committed"],
        "w3_committed_ms": results["w3"]["ours_committed"],
        "w1_start_run_ms": results["w1"]["start_run"],
        "w2_start_run_ms": results["w2"]["start_run"],
        "w3_start_run_ms": results["w3"]["start_run"],
    }
    f = figures
    rows = [
        ("W1 chain of 50", f["w1_ms"], f["w1_celery_ms"], f"ratio ≤ {TARGETS['w1_ratio']:g}", "w1_ratio"),
        ("W2 fan-out 50 + join", f["w2_ms"], f["w2_celery_ms"], f"ratio ≤ {TARGETS['w2_ratio']:g}", "w2_ratio"),
        ("W3 one node", f["w3_ms"], f["w3_celery_ms"], f"≤ {TARGETS['w3_ms']:g} ms", "w3_ms"),
        ("per node (W1 / 50)", f["per_node_ms"], f["per_node_celery_ms"], "", None),
    ]
    print()
    print(f"Engine overhead — database: {database}; source {f['source']}; median of {runs} runs after 1 warm-up")
    print(f"{'workload':<24}{'ours (ms)':>12}{'Celery (ms)':>13}{'ours/Celery':>13}   target")
    for label, ours, celery, target, figure in rows:
        verdict = "" if figure is None else ("  met" if f[figure] <= TARGETS[figure] else "  MISSED")
        print(f"{label:<24}{ours:>12.1f}{celery:>13.1f}{ours / celery:>12.2f}x   {target}{verdict}")
    met = f["event_p95_ms"] <= TARGETS["event_p95_ms"]
    print(
        f"live events (W1, node succeeded → subscriber, n={f['event_count']}): "
        f"p50 {f['event_p50_ms']:.1f} ms, p95 {f['event_p95_ms']:.1f} ms   "
        f"target p95 ≤ {TARGETS['event_p95_ms']:g} ms  {'met' if met else 'MISSED'}"
    )
    print(
        f"  (node running → subscriber: p50 {f['event_running_p50_ms']:.1f} ms, "
        f"p95 {f['event_running_p95_ms']:.1f} ms; arrivals out of seq order: {f['events_out_of_order']})"
    )
    print(
        "ours until the worker stamped the run finished (Run.finished_at): "
        f"W1 {f['w1_committed_ms']:.1f} ms, W2 {f['w2_committed_ms']:.1f} ms, W3 {f['w3_committed_ms']:.1f} ms; "
        f"start_run() call: W1 {f['w1_start_run_ms']:.1f} ms, W2 {f['w2_start_run_ms']:.1f} ms, "
        f"W3 {f['w3_start_run_ms']:.1f} ms"
    )
    return figures


@contextlib.contextmanager
def environment(progress, keep_logs: Path | None = None, concurrency: int = 2):
    """Database, Redis, worker (`concurrency` pool processes) and subscriber, all stopped on
    the way out. Yields (Bench, db kind)."""
    with contextlib.ExitStack() as stack:
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="datamate-bench-")))
        database = configure_environment(var_dir, stack)
        progress(f"database: {database}; redis: {os.environ['REDIS_URL']}")

        import django

        django.setup()
        check_settings()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)

        worker = Worker(var_dir / "worker.log", concurrency)
        stack.callback(worker.stop)
        if keep_logs:
            stack.callback(lambda: keep_logs.write_bytes(worker.log_path.read_bytes()))
        worker.wait_ready()
        progress(f"worker ready (pid {worker.popen.pid}, concurrency {concurrency})")

        import bench.baseline_tasks  # noqa: F401  (the result backend, in this process too)

        subscriber = Subscriber()
        stack.callback(subscriber.close)
        yield Bench(worker, subscriber), database

        from pipelines.engine import events

        events.flush()


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def stop_cleanly_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C (KeyboardInterrupt) does, through the cleanup of
    everything the benchmark started."""

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per workload (after 1 warm-up)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--keep-logs", type=Path, help="copy the worker's log here at the end")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    stop_cleanly_on_signals()
    with environment(progress, args.keep_logs) as (runner, database):
        results = measure(runner, args.runs, progress)
        figures = report(results, database, args.runs)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Everything started was stopped on the way out (environment()).
        print("[bench] interrupted", file=sys.stderr)
        sys.exit(130)
