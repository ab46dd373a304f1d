"""Retries, timeouts, failure routing, waits, cancel, re-run, duplicate delivery."""

from datetime import timedelta
import time

from django.utils import timezone

from pipelines.engine import runtime
from pipelines.engine.runs import rerun, start_run
from pipelines.models import NodeRun, NodeRunLog
from pipelines.tasks import execute_node
from tests.engine.conftest import node_states, outputs, wait_for_run
from tests.engine.test_basic_runs import edge, step
from tests.factories import create_pipeline
from tests.waiting import wait_until


def markers(path):
    return path.read_text().splitlines() if path.exists() else []


def test_retries_with_exponential_backoff(engine, alice):
    doc = {
        "name": "retry",
        "nodes": [
            {**step("flaky", fail_times=2, log="attempt starts"),
             "settings": {"retries": 3, "retry_backoff_seconds": 0.2}},
            step("after"),
        ],
        "edges": [edge("flaky", "after")],
    }  # fmt: skip
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded"
    flaky = NodeRun.objects.get(run=run, node_key="flaky")
    assert flaky.attempt == 3 and flaky.output["attempt"] == 3
    logs = list(NodeRunLog.objects.filter(node_run=flaky).values_list("message", "created_at"))
    assert [message for message, _ in logs] == [
        "attempt starts",
        "attempt 1 failed: planned failure on attempt 1; retrying in 0.2 s",
        "attempt starts",
        "attempt 2 failed: planned failure on attempt 2; retrying in 0.4 s",
        "attempt starts",
    ]
    # Each attempt started no earlier than its backoff after the failure before it (20 ms for clocks).
    for failed, retried, backoff in ((1, 2, 0.2), (3, 4, 0.4)):
        assert (logs[retried][1] - logs[failed][1]).total_seconds() >= backoff - 0.02, logs
    assert (flaky.started_at - logs[3][1]).total_seconds() >= 0.4 - 0.02  # attempt 3's claim, as stored


def test_a_message_delivered_before_the_retry_is_due_neither_starts_it_early_nor_twice(
    engine, processes, alice, tmp_path
):
    """A redelivered message (a restarted worker, Redis's visibility timeout) can come while a
    retry still backs off. Here the worker holding the retry's delayed message dies with it:
    the early message, sent again for the time the retry is due, is the only one left."""
    marker = tmp_path / "marks.txt"
    doc = {
        "name": "early",
        "nodes": [{**step("flaky", fail_times=1, log="attempt starts", marker_file=str(marker)),
                   "settings": {"retries": 1, "retry_backoff_seconds": 10}}],
    }  # fmt: skip
    log_start = len(processes.worker.output())
    run = start_run(create_pipeline(alice, doc), user=alice)
    flaky = NodeRun.objects.filter(run=run, node_key="flaky")
    wait_until(lambda: flaky.get().attempt == 2, what="attempt 1 to fail")
    received = f"[{runtime.task_id(flaky.get().pk)}] received"
    wait_until(lambda: processes.worker.output()[log_start:].count(received) == 2, what="the retry's delayed message")
    processes.kill_worker()
    processes.start_worker()  # no beat: no sweeper re-sends the lost message
    due = flaky.get().ready_at
    execute_node.apply_async((flaky.get().pk,))  # a redelivery
    assert timezone.now() < due - timedelta(seconds=2)  # sent early

    run = wait_for_run(run)
    assert run.state == "succeeded", run.error
    retried = flaky.get()
    assert retried.attempt == 2
    assert retried.started_at >= due - timedelta(milliseconds=50), (retried.started_at, due)
    assert len(markers(marker)) == 1
    assert NodeRunLog.objects.filter(node_run=retried, message="attempt starts").count() == 2


def test_retries_exhausted_fail_the_run_and_skip_downstream(engine, alice):
    doc = {
        "name": "fail",
        "nodes": [{**step("flaky", fail_always=True), "settings": {"retries": 1, "retry_backoff_seconds": 0.1}},
                  step("after"), step("independent")],
        "edges": [edge("flaky", "after")],
    }  # fmt: skip
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "failed"
    assert node_states(run) == {"flaky": "failed", "after": "skipped", "independent": "succeeded"}
    assert run.error == "flaky: planned failure on attempt 2"


def test_continue_on_failure_routes_to_the_error_handle(engine, alice):
    doc = {
        "name": "route",
        "nodes": [
            {**step("risky", fail_always=True), "settings": {"continue_on_failure": True}},
            step("on_success"),
            step("on_error"),
            {**step("report"), "settings": {"join": "none_failed"}},
        ],
        "edges": [
            edge("risky", "on_success"),
            edge("risky", "on_error", "error"),
            edge("on_success", "report"),
            edge("on_error", "report"),
        ],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded"
    assert node_states(run) == {"risky": "failed", "on_success": "skipped", "on_error": "succeeded",
                                "report": "succeeded"}  # fmt: skip


def test_join_none_failed_skips_after_an_unhandled_failure(engine, alice):
    doc = {
        "name": "none_failed",
        "nodes": [step("ok"), step("broken", fail_always=True), {**step("join"), "settings": {"join": "none_failed"}},
                  step("plain_join")],
        "edges": [edge("ok", "join"), edge("broken", "join"), edge("ok", "plain_join"), edge("broken", "plain_join")],
    }  # fmt: skip
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    # `all` runs on its live input; `none_failed` refuses to.
    assert node_states(run) == {"ok": "succeeded", "broken": "failed", "join": "skipped",
                                "plain_join": "succeeded"}  # fmt: skip


def test_timeout_fails_a_slow_node(engine, alice):
    doc = {"name": "slow", "nodes": [{**step("slow", sleep=5), "settings": {"timeout_seconds": 0.5}}]}
    started = time.monotonic()
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "failed"
    assert run.error == "slow: timed out after 0.5 s"
    assert time.monotonic() - started < 4


def test_wait_holds_no_worker(engine, alice):
    """Two 6 s waits and six quick steps on a worker with two processes: the steps are not
    blocked behind the waits, and each wait resumes on time."""
    doc = {
        "name": "waits",
        "nodes": [{"key": f"wait{i}", "type": "wait", "config": {"duration_seconds": 6}} for i in (1, 2)]
        + [step(f"quick{i}") for i in range(6)]
        + [step("after1"), step("after2")],
        "edges": [edge("wait1", "after1"), edge("wait2", "after2")],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    # A wait may be claimed after the quick steps: it is then `running` for a moment.
    wanted = {**{f"quick{i}": "succeeded" for i in range(6)}, "wait1": "waiting", "wait2": "waiting"}
    wait_until(lambda: wanted.items() <= node_states(run).items(), timeout=5.8, what="quick steps while both wait")
    run = wait_for_run(run)
    assert run.state == "succeeded"
    for i in (1, 2):
        waited = NodeRun.objects.get(run=run, node_key=f"wait{i}")
        assert (waited.finished_at - waited.started_at).total_seconds() >= 6


def test_wait_until_a_time_resumes_then_and_holds_no_worker(engine, alice):
    """Two waits `until` a moment 4 s ahead and six quick steps on a worker with two
    processes: the steps finish while both waits wait, and nothing after a wait starts
    before that moment."""
    until = timezone.now() + timedelta(seconds=4)
    doc = {
        "name": "waits until",
        "nodes": [{"key": f"wait{i}", "type": "wait", "config": {"until": until.isoformat()}} for i in (1, 2)]
        + [step(f"quick{i}") for i in range(6)]
        + [step("after1"), step("after2")],
        "edges": [edge("wait1", "after1"), edge("wait2", "after2")],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    wanted = {**{f"quick{i}": "succeeded" for i in range(6)}, "wait1": "waiting", "wait2": "waiting"}
    wait_until(lambda: wanted.items() <= node_states(run).items(), timeout=3.5, what="quick steps while both wait")
    assert timezone.now() < until
    run = wait_for_run(run)
    assert run.state == "succeeded"
    assert run.finished_at >= until
    for i in (1, 2):
        waited = NodeRun.objects.get(run=run, node_key=f"wait{i}")
        assert waited.resume_at == until and waited.output["waited_until"] == until.isoformat()
        assert waited.started_at < until <= waited.finished_at
        assert NodeRun.objects.get(run=run, node_key=f"after{i}").started_at >= until


def test_wait_survives_a_restart_of_every_process(engine, alice, processes):
    doc = {
        "name": "durable",
        "nodes": [step("before"), {"key": "pause", "type": "wait", "config": {"duration_seconds": 2}}, step("after")],
        "edges": [edge("before", "pause"), edge("pause", "after")],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    wait_until(lambda: node_states(run)["pause"] == "waiting", what="the wait to start")
    processes.kill_worker()  # kill -9: the delayed resume message dies with the worker
    time.sleep(2.5)
    assert node_states(run)["pause"] == "waiting"
    processes.start_worker()
    processes.start_beat()  # the sweeper, from the database alone, resumes the due timer
    run = wait_for_run(run)
    assert run.state == "succeeded"
    assert node_states(run) == {"before": "succeeded", "pause": "succeeded", "after": "succeeded"}


def test_cancel_stops_running_and_queued_nodes(engine, alice):
    doc = {
        "name": "cancel",
        "nodes": [step("long", sleep=10, progress_steps=100), step("after"),
                  {"key": "pause", "type": "wait", "config": {"duration_seconds": 60}}],
        "edges": [edge("long", "after")],
    }  # fmt: skip
    run = start_run(create_pipeline(alice, doc), user=alice)
    wait_until(lambda: NodeRun.objects.get(run=run, node_key="long").progress > 0, what="progress")
    assert runtime.cancel_run(run) is True
    started = time.monotonic()
    wait_for_run(run)
    assert run.state == "cancelled"
    assert node_states(run) == {"long": "cancelled", "after": "cancelled", "pause": "cancelled"}
    # The running node stopped at its next progress check instead of finishing its 10 s.
    time.sleep(0.5)
    long = NodeRun.objects.get(run=run, node_key="long")
    assert long.state == "cancelled" and long.progress < 0.5
    assert time.monotonic() - started < 3
    assert runtime.cancel_run(run) is False


def test_cancel_reaches_child_runs(engine, alice):
    child = create_pipeline(alice, {"name": "child", "nodes": [step("long", sleep=10, progress_steps=100)]})
    parent = create_pipeline(
        alice, {"name": "parent", "nodes": [{"key": "call", "type": "subpipeline", "config": {"pipeline": child.pk}}]}
    )
    run = start_run(parent, user=alice)
    wait_until(lambda: child.runs.filter(state="running").exists(), what="the child run")
    runtime.cancel_run(run)
    child_run = child.runs.get()
    wait_for_run(child_run)
    assert child_run.state == "cancelled"


def test_rerun_from_failed_reuses_upstream_outputs(engine, alice, tmp_path):
    marker = tmp_path / "marks.txt"
    doc = {
        "name": "rerun",
        "parameters": [{"name": "broken", "type": "boolean", "default": True}],
        "nodes": [
            step("extract", marker_file=str(marker), value="data"),
            step("other", marker_file=str(marker)),
            step("transform", marker_file=str(marker), fail_always="{{ params.broken }}"),
            step("load", marker_file=str(marker)),
        ],
        "edges": [edge("extract", "transform"), edge("transform", "load")],
    }
    pipeline = create_pipeline(alice, doc)
    first = wait_for_run(start_run(pipeline, user=alice))
    assert first.state == "failed"
    assert sorted(line.split("|")[1] for line in markers(marker)) == ["extract", "other"]

    second = wait_for_run(rerun(first, params={"broken": False}, user=alice))
    assert second.state == "succeeded"
    assert (second.rerun_of_id, second.rerun_from, second.params) == (first.pk, "transform", {"broken": False})
    # extract and other were not executed again: their outputs were reused.
    assert sorted(line.split("|")[1] for line in markers(marker)) == ["extract", "load", "other", "transform"]
    assert outputs(second)["transform"]["input_values"] == {"extract": "data"}

    third = wait_for_run(rerun(second, from_node="load", user=alice))
    assert third.state == "succeeded"
    assert [line.split("|")[1] for line in markers(marker)].count("load") == 2
    assert [line.split("|")[1] for line in markers(marker)].count("transform") == 1


def test_duplicate_delivery_executes_once(engine, alice, tmp_path):
    marker = tmp_path / "marks.txt"
    doc = {"name": "dup", "nodes": [step("once", sleep=0.5, marker_file=str(marker))]}
    run = start_run(create_pipeline(alice, doc), user=alice)
    node_run = NodeRun.objects.get(run=run)
    for _ in range(5):  # the broker delivering the same message again
        execute_node.apply_async((node_run.pk,))
    wait_for_run(run)
    time.sleep(0.5)
    assert run.state == "succeeded"
    assert len(markers(marker)) == 1


def test_kill_9_of_a_worker_mid_node_finishes_the_node_exactly_once(engine, alice, processes, tmp_path):
    marker = tmp_path / "marks.txt"
    doc = {
        "name": "chaos",
        "nodes": [step("work", sleep=3, progress_steps=30, marker_file=str(marker)), step("after")],
        "edges": [edge("work", "after")],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    wait_until(lambda: NodeRun.objects.get(run=run, node_key="work").progress > 0.2, what="work under way")
    killed_worker = NodeRun.objects.get(run=run, node_key="work").worker
    processes.kill_worker()
    processes.start_worker()
    processes.start_beat()
    run = wait_for_run(run, timeout=40)
    assert run.state == "succeeded"
    work = NodeRun.objects.get(run=run, node_key="work")
    assert work.attempt == 2
    assert len(markers(marker)) == 1  # the killed attempt never finished; the second did, once
    lost = [message for message in NodeRunLog.objects.filter(node_run=work).values_list("message", flat=True)
            if "lost" in message]  # fmt: skip
    assert lost == [f"worker {killed_worker} lost; starting attempt 2"]
    assert work.worker != killed_worker  # the pool process of the new worker
    assert (timezone.now() - work.finished_at).total_seconds() < 40


def test_result_cache_reuses_identical_work(engine, alice, tmp_path):
    marker = tmp_path / "marks.txt"
    doc = {
        "name": "cache",
        "parameters": [{"name": "value", "type": "string", "default": "a"}],
        "nodes": [
            step("source", value="{{ params.value }}"),
            {**step("expensive", marker_file=str(marker)), "settings": {"cache": True}},
            step("uncached", marker_file=str(marker)),
        ],
        "edges": [edge("source", "expensive"), edge("source", "uncached")],
    }
    pipeline = create_pipeline(alice, doc)
    first = wait_for_run(start_run(pipeline, user=alice))
    second = wait_for_run(start_run(pipeline, user=alice))
    assert node_states(second) == {"source": "succeeded", "expensive": "cached", "uncached": "succeeded"}
    assert outputs(second)["expensive"] == outputs(first)["expensive"]
    names = [line.split("|")[1] for line in markers(marker)]
    assert names.count("expensive") == 1 and names.count("uncached") == 2
    # Different input, different key: executed again.
    third = wait_for_run(start_run(pipeline, {"value": "b"}, user=alice))
    assert node_states(third)["expensive"] == "succeeded"
    assert [line.split("|")[1] for line in markers(marker)].count("expensive") == 2


def test_rerun_reaches_into_the_failed_child_run(engine, alice, tmp_path):
    marker = tmp_path / "marks.txt"
    child = create_pipeline(
        alice,
        {
            "name": "child",
            "parameters": [{"name": "broken", "type": "boolean", "required": True}],
            "nodes": [step("prep", marker_file=str(marker)), step("work", fail_always="{{ params.broken }}")],
            "edges": [edge("prep", "work")],
        },
    )
    parent = create_pipeline(
        alice,
        {
            "name": "parent",
            "parameters": [{"name": "broken", "type": "boolean", "default": True}],
            "nodes": [
                {
                    "key": "call",
                    "type": "subpipeline",
                    "config": {"pipeline": child.pk, "parameters": {"broken": "{{ params.broken }}"}},
                }
            ],
        },
    )
    first = wait_for_run(start_run(parent, user=alice))
    assert first.state == "failed"
    second = wait_for_run(rerun(first, params={"broken": False}, user=alice))
    assert second.state == "succeeded", second.error
    first_child, second_child = child.runs.order_by("pk")
    assert second_child.rerun_of_id == first_child.pk
    assert second_child.parent_node_run.run_id == second.pk
    # The child's succeeded node was reused, not executed again.
    assert len(markers(marker)) == 1
    assert node_states(second_child) == {"prep": "succeeded", "work": "succeeded"}
