"""A cancel reads a run's node runs and child runs once. A Loop iteration or a child run
written just after that read would escape it; on a real worker, such leftovers are cancelled
when their first node is claimed, instead of running. The interleaving is set up directly:
the rows the late writer would have written are written after the cancel."""

from django.utils import timezone

from pipelines.engine import runtime
from pipelines.engine.runs import start_run
from pipelines.models import NodeRun, Run
from tests.engine.conftest import wait_for_run
from tests.engine.test_basic_runs import edge, step
from tests.factories import create_pipeline
from tests.waiting import wait_until


def test_a_loop_iteration_written_after_the_cancel_is_cancelled_not_run(engine, alice, tmp_path):
    marker = tmp_path / "marks.txt"
    doc = {
        "name": "late iteration",
        "nodes": [
            {"key": "repeat", "type": "loop", "config": {"mode": "count", "count": 3}},
            {**step("first", marker_file=str(marker)), "parent": "repeat"},
            {**step("second", marker_file=str(marker)), "parent": "repeat"},
            {"key": "pause", "type": "wait", "config": {"duration_seconds": 60}},
        ],
        "edges": [edge("pause", "repeat"), edge("first", "second")],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    assert runtime.cancel_run(run) is True
    # What the Loop's worker would write had it read the loop as waiting just before the cancel.
    now = timezone.now()
    first = NodeRun.objects.create(run=run, node_key="first", iteration="repeat:0", state="ready", ready_at=now)
    second = NodeRun.objects.create(run=run, node_key="second", iteration="repeat:0", state="pending")
    runtime.enqueue([first.pk], run=run)

    wait_until(lambda: NodeRun.objects.get(pk=first.pk).state != "ready", what="the worker's claim")
    assert NodeRun.objects.get(pk=first.pk).state == "cancelled"
    assert NodeRun.objects.get(pk=second.pk).state == "cancelled"
    assert not marker.exists()  # neither body node ran
    assert Run.objects.get(pk=run.pk).state == "cancelled"


def test_a_child_run_started_after_its_parent_was_cancelled_is_cancelled_not_run(engine, alice, tmp_path):
    marker = tmp_path / "marks.txt"
    child = create_pipeline(alice, {"name": "child", "nodes": [step("work", marker_file=str(marker))]})
    parent = create_pipeline(
        alice,
        {
            "name": "parent",
            "nodes": [
                {"key": "pause", "type": "wait", "config": {"duration_seconds": 60}},
                {"key": "call", "type": "subpipeline", "config": {"pipeline": child.pk}},
            ],
            "edges": [edge("pause", "call")],
        },
    )
    run = start_run(parent, user=alice)
    assert runtime.cancel_run(run) is True
    call = NodeRun.objects.get(run=run, node_key="call")
    assert call.state == "cancelled"
    # What the Sub-pipeline node's worker would start had it moved to waiting just before.
    late = start_run(child, trigger=Run.Trigger.SUBPIPELINE, user=alice, parent_node_run=call)

    late = wait_for_run(late)
    assert late.state == "cancelled"
    # A cancel commits the run's state, then its node runs' (one lock at a time).
    work = NodeRun.objects.filter(run=late, node_key="work")
    wait_until(lambda: work.get().state != "ready", what="the child's node run to be cancelled")
    assert work.get().state == "cancelled"
    assert not marker.exists()
