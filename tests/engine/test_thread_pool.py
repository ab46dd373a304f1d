"""A worker on Celery's thread pool, where no SIGALRM reaches an executor: a node's timeout
still holds, at the executor's next progress() call or, for one that never calls it,
through the sweeper."""

import pytest

from pipelines.engine import runtime
from pipelines.engine.runs import start_run
from pipelines.models import NodeResultCache, NodeRun, NodeRunLog, NodeShard
from tests.engine import workers
from tests.engine.conftest import make_dataset, node, node_states, wait_for_run
from tests.engine.test_basic_runs import step
from tests.factories import create_pipeline, edge
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def thread_worker(engine, processes):
    engine.stop()  # the prefork worker: the engine fixture starts it again for the next test
    # Four threads: the sweeper must find one free while two executors ignore their timeout.
    threads = workers.start_worker(processes.log_dir, name="threads", pool="threads", concurrency=4)
    yield threads
    threads.stop(timeout=1)  # without waiting for the executors that ignored their timeout


def test_timeouts_hold_on_a_thread_pool_worker(thread_worker, processes, alice, tmp_path):
    marker = tmp_path / "late.txt"
    doc = {
        "name": "timeouts in threads",
        "nodes": [
            {**step("reports", sleep=6, progress_steps=60), "settings": {"timeout_seconds": 0.5}},
            {**step("silent", sleep=60), "settings": {"timeout_seconds": 0.5}},
            # Returns after the sweeper gave it up: its result must be neither recorded nor cached.
            {**step("late", sleep=9, marker_file=str(marker)), "settings": {"timeout_seconds": 0.5, "cache": True}},
            # Reaches its first progress() call after the sweeper gave it up: its own time-out
            # must write nothing more.
            {**step("stray", sleep=9, progress_steps=1), "settings": {"timeout_seconds": 0.5}},
            step("quick"),
        ],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    reports = NodeRun.objects.filter(run=run, node_key="reports")
    wait_until(lambda: reports.get().state == "failed", timeout=10, what="the reporting node to time out")
    assert reports.get().error == "timed out after 0.5 s"
    assert duration(reports.get()) < 3  # stopped at a progress() call, not after its 6 s

    processes.start_beat()  # the sweeper: the silent node never gives its thread a chance
    run = wait_for_run(run)
    assert run.state == "failed"
    assert node_states(run) == {
        "reports": "failed", "silent": "failed", "late": "failed", "stray": "failed", "quick": "succeeded"
    }  # fmt: skip
    silent = NodeRun.objects.get(run=run, node_key="silent")
    assert silent.error == "timed out after 0.5 s (its worker could not stop it; the sweeper did)"
    assert duration(silent) < 20  # the sweeper's margin (3 s here) and period (1 s), not 60 s

    late, stray = (NodeRun.objects.get(run=run, node_key=key) for key in ("late", "stray"))
    for node_run in (late, stray):
        ended = f"execute_node[{runtime.task_id(node_run.pk)}] succeeded"
        wait_until(lambda ended=ended: ended in thread_worker.output(), timeout=20, what=f"{node_run.node_key}'s end")
    assert marker.exists()  # late did return a result
    late.refresh_from_db()
    assert (late.state, late.attempt, late.output) == ("failed", 1, None)
    assert not NodeResultCache.objects.filter(source=late).exists()
    overdue = "failed: timed out after 0.5 s (its worker could not stop it; the sweeper did)"
    assert list(NodeRunLog.objects.filter(node_run=stray).values_list("message", flat=True)) == [overdue]


def test_a_shard_that_ignores_its_timeout_on_a_thread_pool_worker_is_failed_by_the_sweeper(
    thread_worker, processes, alice
):
    dataset = make_dataset(alice, "slow shards", [{"id": i} for i in range(10)])
    pipeline = create_pipeline(
        alice,
        {
            "name": "silent shards",
            "nodes": [
                node("read", "input_dataset", dataset=dataset.name),
                node("copy", "test_sharded_copy", settings={"timeout_seconds": 0.5}, shards=2, sleep=60,
                     report_progress=False),
            ],
            "edges": [edge("read", "copy")],
        },
    )  # fmt: skip
    processes.start_beat()
    run = wait_for_run(start_run(pipeline, user=alice))
    assert run.state == "failed"
    assert run.error.startswith("copy: shard ")
    assert run.error.endswith(": timed out after 0.5 s (its worker could not stop it; the sweeper did)")
    copy = NodeRun.objects.get(run=run, node_key="copy")
    assert duration(copy) < 20  # not after the shards' 60 s
    assert set(NodeShard.objects.filter(node_run=copy).values_list("state", flat=True)) <= {"failed", "cancelled"}


def duration(node_run) -> float:
    return (node_run.finished_at - node_run.started_at).total_seconds()
