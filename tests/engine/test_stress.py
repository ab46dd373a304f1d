"""Many runs at once on several worker processes: every join starts once, nothing runs twice."""

from collections import Counter

from pipelines.engine.runs import start_run
from pipelines.models import NodeRun
from tests.engine import workers
from tests.engine.conftest import wait_for_run
from tests.engine.test_basic_runs import edge, step
from tests.factories import create_pipeline


def test_concurrent_runs_with_joins_execute_every_node_exactly_once(engine, alice, tmp_path, engine_logs):
    marker = tmp_path / "marks.txt"
    width = 6
    doc = {
        "name": "diamonds",
        "nodes": [step("start", marker_file=str(marker))]
        + [step(f"b{i}", marker_file=str(marker)) for i in range(width)]
        + [step("join", marker_file=str(marker)), {**step("first", marker_file=str(marker)),
                                                    "settings": {"join": "any"}}],
        "edges": [edge("start", f"b{i}") for i in range(width)]
        + [edge(f"b{i}", "join") for i in range(width)]
        + [edge(f"b{i}", "first") for i in range(width)],
    }  # fmt: skip
    pipeline = create_pipeline(alice, doc)
    extra = workers.start_worker(engine_logs, name="extra-worker", concurrency=2)
    try:
        runs = [start_run(pipeline, user=alice) for _ in range(25)]
        for run in runs:
            wait_for_run(run, timeout=90)
    finally:
        extra.stop()
    assert {run.state for run in runs} == {"succeeded"}
    executions = Counter("|".join(line.split("|")[:2]) for line in marker.read_text().splitlines())
    expected = {
        f"{run.pk}|{key}" for run in runs for key in ["start", "join", "first"] + [f"b{i}" for i in range(width)]
    }
    assert set(executions) == expected
    assert max(executions.values()) == 1
    assert not NodeRun.objects.filter(run__in=runs).exclude(state="succeeded").exists()


def test_runs_whose_last_nodes_end_together_each_end_once(engine, alice, engine_logs):
    """Eight nodes with nothing downstream end in one run, on four worker processes: each
    node's end is one statement with the run's check (runtime.succeed); the ends that overlap
    see each other still running, and the check after their commits ends the run."""
    width = 8
    pipeline = create_pipeline(alice, {"name": "sinks", "nodes": [step(f"s{i}") for i in range(width)], "edges": []})
    extra = workers.start_worker(engine_logs, name="extra-worker", concurrency=2)
    try:
        runs = [start_run(pipeline, user=alice) for _ in range(30)]
        for run in runs:
            wait_for_run(run, timeout=90)  # beat is not running: no sweeper ends a stuck run
    finally:
        extra.stop()
    assert {run.state for run in runs} == {"succeeded"}
    assert not NodeRun.objects.filter(run__in=runs).exclude(state="succeeded").exists()
