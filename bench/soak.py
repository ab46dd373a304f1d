"""Soak: `kill -9` of workers at random moments during many runs, and a load of concurrent
runs submitted through the API, each with figures.

    .venv/bin/python bench/soak.py [--runs 100] [--kills 30] [--json FILE]     # kill mode
    .venv/bin/python bench/soak.py --concurrent 200 [--json FILE]              # load mode

Self-contained like bench/engine_overhead.py, whose environment code it reuses: a fresh
database (a temp SQLite file, or with DATABASE_URL a fresh PostgreSQL database), a private
redis-server (unless REDIS_URL is set), TWO Celery workers (prefork, concurrency 2 each) and
celery beat (the sweeper, every second). Everything it starts is stopped at the end.

Kill mode: runs of a 10-node pipeline with a fan-out and a Loop (`chaos_document`), at most
`--parallel` at a time, while a killer sends SIGKILL to one worker's whole process group at
random moments and restarts it. Each node appends a marker (run, node, loop index, attempt)
to a file; every run must succeed, the recorded attempt of every node must have left its
marker exactly once, and no node run may be left unfinished (see effect_counts).

Load mode: `--concurrent N` runs of the same pipeline (no kills) posted to
POST /api/pipelines/{id}/runs/ at once; runs/s until the last finished, and the p95 node
start delay (NodeRun.started_at - ready_at). Baseline in the same run: N plain Celery chains
of the same number of no-op tasks (bench/baseline_tasks.py), sent at once.

The test suite runs the same scenarios, shorter, on its own workers (tests/chaos/).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Iterable
import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Loop iterations in `chaos_document`.
LOOP_COUNT = 2
TOP_LEVEL = ("start", "a", "b", "c", "join", "end", "final")
LOOP_BODY = ("x", "y")
#: Seconds a run may take (kills included) before the soak gives up on it.
RUN_TIMEOUT = float(os.environ.get("BENCH_WAIT_TIMEOUT", 120))


# --- the scenario (shared with tests/chaos/) ----------------------------------------------


def _step(key: str, marker: Path, sleep: float, parent: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"marker_file": str(marker)}
    if sleep:
        config["sleep"] = sleep
    return {"key": key, "type": "test_step", "config": config, **({"parent": parent} if parent else {})}


def _edge(source: str, target: str) -> dict[str, str]:
    return {"source": source, "source_handle": "out", "target": target}


def chaos_document(marker: Path, sleep: float = 0.0) -> dict[str, Any]:
    """10 nodes: start → a, b, c (fan-out) → join → loop of 2 (body x → y) → end → final.
    Each test_step node appends `run|node|loop index` to `marker` when it succeeds."""
    nodes = [_step(key, marker, sleep) for key in TOP_LEVEL]
    nodes.append({"key": "repeat", "type": "loop", "config": {"mode": "count", "count": LOOP_COUNT}})
    nodes += [_step(key, marker, sleep, parent="repeat") for key in LOOP_BODY]
    edges = [_edge("start", key) for key in "abc"] + [_edge(key, "join") for key in "abc"]
    edges += [_edge("join", "repeat"), _edge("x", "y"), _edge("repeat", "end"), _edge("end", "final")]
    return {"name": "chaos-fan-out-loop", "nodes": nodes, "edges": edges}


def expected_effects(run_ids: Iterable[int]) -> Counter:
    """Every (run, node, loop index) marker a succeeded run of `chaos_document` leaves, once."""
    wanted: Counter = Counter()
    for run_id in run_ids:
        wanted.update((str(run_id), key, "") for key in TOP_LEVEL)
        wanted.update((str(run_id), key, str(index)) for key in LOOP_BODY for index in range(LOOP_COUNT))
    return wanted


def effect_counts(marker: Path, run_ids: Iterable[int]) -> dict[str, int]:
    """Markers (`run|node|loop index|attempt`) against expectations and against the attempt
    each node run recorded as its result.

    - `duplicate_effects`: one attempt's effect more than once (a duplicate delivery or a
      double claim): must be 0.
    - `lost_effects`: an expected effect without a marker of the recorded attempt: must be 0.
    - `repeated_by_lost_workers`: effects of earlier attempts. A worker killed after a node's
      effect but before its result was committed leaves that effect, and the sweeper runs
      the node again (at-least-once, as in every engine: an effect outside the engine cannot
      be rolled back). Reported, not a failure.
    """
    from pipelines.models import NodeRun

    lines = [tuple(line.split("|")) for line in marker.read_text().splitlines()] if marker.exists() else []
    per_attempt = Counter(lines)
    per_effect = Counter(line[:3] for line in lines)
    recorded = {
        (str(run_id), key, iteration.rpartition(":")[2] if iteration else ""): str(attempt)
        for run_id, key, iteration, attempt in NodeRun.objects.filter(run_id__in=run_ids).values_list(
            "run_id", "node_key", "iteration", "attempt"
        )
    }
    wanted = expected_effects(run_ids)
    return {
        "effects_expected": sum(wanted.values()),
        "effects_seen": len(lines),
        "duplicate_effects": sum(count - 1 for count in per_attempt.values() if count > 1),
        "lost_effects": sum(1 for key in wanted if (*key, recorded.get(key)) not in per_attempt),
        "unexpected_effects": sum(count for key, count in per_effect.items() if key not in wanted),
        "repeated_by_lost_workers": sum(
            count for key, count in per_attempt.items() if key[:3] in recorded and key[3] != recorded[key[:3]]
        ),
    }


def run_figures(run_ids: list[int]) -> dict[str, Any]:
    """End states of the runs and of their node runs."""
    from django.db.models import F, Sum
    from django.db.models.functions import Coalesce

    from pipelines.engine.states import NodeState
    from pipelines.models import NodeRun, Run

    states = Counter(Run.objects.filter(pk__in=run_ids).values_list("state", flat=True))
    unfinished = NodeRun.objects.filter(run_id__in=run_ids, state__in=NodeState.UNFINISHED)
    return {
        "runs": len(run_ids),
        "runs_succeeded": states.get("succeeded", 0),
        "run_states": dict(states),
        "stuck_node_runs": unfinished.count(),
        "stuck_running_node_runs": unfinished.filter(state=NodeState.RUNNING).count(),
        "node_run_attempts_over_1": NodeRun.objects.filter(run_id__in=run_ids, attempt__gt=1).count(),
        "superseded_attempts": NodeRun.objects.filter(run_id__in=run_ids).aggregate(
            extra=Coalesce(Sum(F("attempt") - 1), 0)
        )["extra"],
    }


def wait_for_runs(run_ids: list[int], timeout: float) -> None:
    """Until every run is finished, or `timeout` seconds passed since the last one finished."""
    from pipelines.engine.states import RunState
    from pipelines.models import Run

    left, last_progress = set(run_ids), time.monotonic()
    while left and time.monotonic() - last_progress < timeout:
        done = set(Run.objects.filter(pk__in=left, state__in=RunState.FINISHED).values_list("pk", flat=True))
        if done:
            left -= done
            last_progress = time.monotonic()
        time.sleep(0.1)


@dataclass
class Killer:
    """Kills one of the workers (`kill(index)`: SIGKILL, then a restart) at random moments
    until told to stop or `kills` is reached. Runs in a thread."""

    kill: Callable[[int], None]
    workers: int
    kills: int
    gap: tuple[float, float] = (0.5, 2.5)
    seed: int | None = None
    done: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self):
        self.random = random.Random(self.seed)
        self.thread = threading.Thread(target=self._loop, name="soak-killer", daemon=True)

    def _loop(self) -> None:
        try:
            while self.done < self.kills and not self.stop.wait(self.random.uniform(*self.gap)):
                self.kill(self.random.randrange(self.workers))
                self.done += 1
        except BaseException as error:  # reported by the caller
            self.error = error

    def __enter__(self) -> Killer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(120)


def soak(
    start: Callable[[], int], kill: Callable[[int], None], *, runs: int, kills: int, parallel: int = 8,
    workers: int = 2, gap: tuple[float, float] = (0.5, 2.5), seed: int | None = None, progress=lambda _: None,
) -> tuple[list[int], Killer]:  # fmt: skip
    """Start `runs` runs (`start()` returns a run id), at most `parallel` unfinished at a time,
    while a Killer kills workers; returns the run ids once every run finished (or timed out)."""
    from pipelines.engine.states import RunState
    from pipelines.models import Run

    run_ids: list[int] = []
    with Killer(kill, workers, kills, gap, seed) as killer:
        while len(run_ids) < runs:
            # Runs keep pace with the kills (a restart takes seconds), so the kills spread over them.
            if killer.thread.is_alive() and killer.done < kills * len(run_ids) // runs:
                time.sleep(0.1)
                continue
            active = Run.objects.filter(pk__in=run_ids).exclude(state__in=RunState.FINISHED).count()
            for _ in range(min(parallel - active, runs - len(run_ids))):
                run_ids.append(start())
                if len(run_ids) % 20 == 0:
                    progress(f"{len(run_ids)} runs started, {killer.done} kills")
            time.sleep(0.1)
        wait_for_runs(run_ids, RUN_TIMEOUT)
    if killer.error is not None:
        raise RuntimeError("the killer failed") from killer.error
    return run_ids, killer


def start_delays_ms(run_ids: list[int]) -> list[float]:
    """Per executed node run: started_at - ready_at (a node handed on inline starts at once)."""
    from pipelines.models import NodeRun

    rows = NodeRun.objects.filter(run_id__in=run_ids, started_at__isnull=False, ready_at__isnull=False)
    return [(started - ready).total_seconds() * 1000 for ready, started in rows.values_list("ready_at", "started_at")]


def load(post: Callable[[], int], concurrent: int) -> dict[str, Any]:
    """Post `concurrent` runs at once (`post()` returns a run id); wait for all; figures."""
    from django.db.models import Max

    from bench.engine_overhead import percentile
    from pipelines.models import Run

    started = time.monotonic()
    run_ids = [post() for _ in range(concurrent)]
    submitted = time.monotonic() - started
    wait_for_runs(run_ids, RUN_TIMEOUT)
    last = Run.objects.filter(pk__in=run_ids).aggregate(last=Max("finished_at"))["last"]
    first = Run.objects.filter(pk__in=run_ids).order_by("created_at").values_list("created_at", flat=True).first()
    wall = (last - first).total_seconds() if last and first else float("nan")
    delays = start_delays_ms(run_ids)
    return {
        "run_ids": run_ids,
        "concurrent": concurrent,
        "submit_s": submitted,
        "wall_s": wall,
        "runs_per_s": concurrent / wall if wall else 0.0,
        "start_delay_p50_ms": percentile(delays, 50),
        "start_delay_p95_ms": percentile(delays, 95),
        "node_runs_started": len(delays),
    }


# --- the command ---------------------------------------------------------------------------


class Beat:
    """celery beat with the database scheduler (it runs the sweeper every DATAMATE_SWEEP_SECONDS)."""

    def __init__(self, var_dir: Path):
        from datamate.embedded_redis import die_with_parent

        self.log = (var_dir / "beat.log").open("ab")
        command = [
            sys.executable, "-m", "celery", "-A", "datamate", "beat", "-l", "info",
            "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile", str(var_dir / "beat.pid"),
        ]  # fmt: skip
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=dict(os.environ), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
        self.log.close()


@contextlib.contextmanager
def environment(progress, workers: int = 2):
    """engine_overhead's database and Redis, the engine's short test timings, `workers`
    workers and beat. Yields (workers, owner, var_dir, database kind)."""
    from bench import engine_overhead

    with contextlib.ExitStack() as stack:
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="datamate-soak-")))
        database = engine_overhead.configure_environment(var_dir, stack)
        # The markers' node type next to the benchmark's, and lost workers found in seconds.
        os.environ["DATAMATE_NODE_TYPE_MODULES"] = "bench.node_types,tests.engine.node_types"
        os.environ.update(
            DATAMATE_HEARTBEAT_SECONDS="0.5", DATAMATE_STALE_AFTER_SECONDS="3", DATAMATE_SWEEP_SECONDS="1"
        )
        progress(f"database: {database}; redis: {os.environ['REDIS_URL']}")

        import django

        django.setup()
        engine_overhead.check_settings()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        running = []
        for index in range(workers):
            worker = engine_overhead.Worker(var_dir / f"worker{index}.log")
            stack.callback(worker.stop)
            running.append(worker)
        for worker in running:
            worker.wait_ready()
        beat = Beat(var_dir)
        stack.callback(beat.stop)
        progress(f"{workers} workers ready (concurrency 2 each), beat started")

        import bench.baseline_tasks  # noqa: F401  (the baseline's result backend, in this process too)

        owner = get_user_model().objects.create_user("soak", password="soak-password-1")
        yield running, owner, var_dir, database


def kill_mode(args, progress) -> dict[str, Any]:
    with environment(progress) as (workers, owner, var_dir, database):
        from pipelines import services
        from pipelines.engine.runs import start_run

        marker = var_dir / "markers.txt"
        pipeline = services.import_pipeline(owner=owner, document=chaos_document(marker, args.sleep))

        def kill(index: int) -> None:
            os.killpg(workers[index].popen.pid, signal.SIGKILL)  # kill -9 of the worker and its pool
            workers[index].restart(2)

        started = time.monotonic()
        run_ids, killer = soak(
            lambda: start_run(pipeline, user=owner).pk, kill, runs=args.runs, kills=args.kills,
            parallel=args.parallel, seed=args.seed, progress=progress,
        )  # fmt: skip
        wall = time.monotonic() - started
        figures = {"mode": "kill", "database": database, "kills": killer.done, "wall_s": wall}
        figures.update(run_figures(run_ids))
        figures.update(effect_counts(marker, run_ids))
    print()
    print(f"Soak (kill -9) — database: {database}")
    for label, name in [
        ("runs", "runs"), ("kills (kill -9 of a worker, then a restart)", "kills"),
        ("runs succeeded", "runs_succeeded"), ("node effects expected", "effects_expected"),
        ("duplicate effects (one attempt twice)", "duplicate_effects"), ("lost effects", "lost_effects"),
        ("unexpected effects", "unexpected_effects"), ("stuck node runs", "stuck_node_runs"),
        ("node runs re-run after a lost worker", "node_run_attempts_over_1"),
        ("effects of killed attempts (ran again)", "repeated_by_lost_workers"),
    ]:  # fmt: skip
        print(f"  {label:<46}{figures[name]:>10}")
    print(f"  {'wall time (s)':<46}{wall:>10.1f}")
    figures["held"] = (
        figures["runs_succeeded"] == figures["runs"]
        and figures["duplicate_effects"] == figures["lost_effects"] == figures["stuck_node_runs"] == 0
        and figures["unexpected_effects"] == 0
    )
    return figures


def celery_chains(count: int, length: int) -> float:
    """Seconds for `count` plain Celery chains of `length` no-op tasks, sent at once."""
    from celery import chain

    from bench.baseline_tasks import noop

    started = time.monotonic()
    results = [chain(noop.s(None), *(noop.s() for _ in range(length - 1))).apply_async() for _ in range(count)]
    for result in results:
        result.get(timeout=RUN_TIMEOUT)
    return time.monotonic() - started


def load_mode(args, progress) -> dict[str, Any]:
    with environment(progress) as (_workers, owner, var_dir, database):
        from rest_framework.test import APIClient

        from pipelines import services

        pipeline = services.import_pipeline(owner=owner, document=chaos_document(var_dir / "markers.txt"))
        client = APIClient(SERVER_NAME="localhost")  # a host ALLOWED_HOSTS accepts by default
        client.force_authenticate(owner)

        def post() -> int:
            response = client.post(f"/api/pipelines/{pipeline.pk}/runs/", {}, format="json")
            if response.status_code != 201:
                raise RuntimeError(f"POST runs answered {response.status_code}: {response.content[:500]!r}")
            return response.json()["id"]

        length = len(expected_effects([0]))
        celery_chains(4, length)  # warm both workers' pools
        figures = {"mode": "load", "database": database}
        figures.update(load(post, args.concurrent))
        run_ids = figures.pop("run_ids")
        figures.update(run_figures(run_ids))
        figures.update(effect_counts(var_dir / "markers.txt", run_ids))
        baseline = celery_chains(args.concurrent, length)
        figures["celery_chains_per_s"] = args.concurrent / baseline
        figures["runs_per_s_ratio"] = figures["runs_per_s"] / figures["celery_chains_per_s"]
    f = figures
    print()
    print(f"Soak (load) — database: {database}; {args.concurrent} runs posted at once, {length} node executions each")
    print(f"  runs/s completed        {f['runs_per_s']:>8.1f}   (plain Celery, {args.concurrent} chains of {length} "
          f"no-op tasks: {f['celery_chains_per_s']:.1f}/s; ratio {f['runs_per_s_ratio']:.2f})")  # fmt: skip
    print(f"  node start delay        p50 {f['start_delay_p50_ms']:.0f} ms, p95 {f['start_delay_p95_ms']:.0f} ms "
          f"(started_at - ready_at, {f['node_runs_started']} node runs)")  # fmt: skip
    print(f"  runs succeeded          {f['runs_succeeded']}/{f['runs']}; duplicate effects {f['duplicate_effects']}, "
          f"lost effects {f['lost_effects']}, stuck node runs {f['stuck_node_runs']}")  # fmt: skip
    figures["held"] = (
        f["runs_succeeded"] == f["runs"] and f["duplicate_effects"] == f["lost_effects"] == f["stuck_node_runs"] == 0
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    from bench.engine_overhead import progress, stop_cleanly_on_signals

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="kill mode: runs to start (default 100)")
    parser.add_argument("--kills", type=int, default=30, help="kill mode: kill -9 of a worker, at most (default 30)")
    parser.add_argument("--parallel", type=int, default=8, help="kill mode: unfinished runs at a time (default 8)")
    parser.add_argument("--sleep", type=float, default=0.05, help="kill mode: seconds each node sleeps (default 0.05)")
    parser.add_argument("--seed", type=int, help="kill mode: seed of the kill moments")
    parser.add_argument("--concurrent", type=int, help="load mode: runs posted at once (e.g. 200); no kills")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.kills < 0 or (args.concurrent is not None and args.concurrent < 1):
        parser.error("--runs and --concurrent must be at least 1, --kills at least 0")

    stop_cleanly_on_signals()
    figures = load_mode(args, progress) if args.concurrent else kill_mode(args, progress)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["held"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("[soak] interrupted", file=sys.stderr)
        sys.exit(130)
