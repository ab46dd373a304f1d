"""Which runs the sweeper takes for stalled (a worker died between a node's end and the next
move): only those nothing else will move. Rows are set up directly; no worker."""

from datetime import timedelta

from django.utils import timezone
import pytest

from pipelines.engine import sweeper
from pipelines.engine.runs import start_run
from pipelines.models import NodeRun, Run
from tests.engine.test_basic_runs import edge, step
from tests.factories import create_pipeline

LONG_AGO = timedelta(minutes=10)


@pytest.fixture
def old_run(alice):
    """A running run of a → b whose node runs all last moved long ago."""
    pipeline = create_pipeline(alice, {"name": "two", "nodes": [step("a"), step("b")], "edges": [edge("a", "b")]})
    run = start_run(pipeline, user=alice)  # nothing is committed, so nothing reaches a worker
    then = timezone.now() - LONG_AGO
    Run.objects.filter(pk=run.pk).update(started_at=then)
    NodeRun.objects.filter(run=run).update(ready_at=then, started_at=then, finished_at=then)
    return run


def stalled(run) -> bool:
    stale = timezone.now() - timedelta(minutes=1)
    return sweeper.stalled_runs(stale).filter(pk=run.pk).exists()


def set_node(run, key, **fields):
    NodeRun.objects.filter(run=run, node_key=key).update(**fields)


def test_a_run_left_between_two_nodes_is_stalled(old_run):
    set_node(old_run, "a", state="succeeded", handles=["out"])
    assert stalled(old_run)


@pytest.mark.parametrize(
    "waiting",
    [
        {"state": "ready"},
        {"state": "running"},
        {"state": "waiting", "resume_at": timezone.now() + timedelta(hours=1)},  # a Wait node's timer
        {"state": "waiting", "shard_stage": 0},  # its shards move it on
    ],
)
def test_a_run_with_something_still_to_move_it_is_not_stalled(old_run, waiting):
    set_node(old_run, "a", **waiting)
    assert not stalled(old_run)


def test_a_node_waiting_on_an_active_child_run_is_not_stalled(old_run, alice):
    set_node(old_run, "a", state="waiting")
    parent = NodeRun.objects.get(run=old_run, node_key="a")
    child_pipeline = create_pipeline(alice, {"name": "child", "nodes": [step("x")]})
    child = start_run(child_pipeline, user=alice, parent_node_run=parent)
    assert not stalled(old_run)
    # The child ended long ago, and the worker that ended it died before moving `a` on.
    NodeRun.objects.filter(run=child).update(state="succeeded", output={"n": 1}, handles=["out"])
    Run.objects.filter(pk=child.pk).update(state="succeeded", finished_at=timezone.now() - LONG_AGO)
    assert stalled(old_run)
    assert sweeper.unstall(old_run, timezone.now() - timedelta(minutes=1)) == 1
    a, b = NodeRun.objects.filter(run=old_run).order_by("node_key")
    assert (a.state, a.output) == ("succeeded", {"run": child.pk, "outputs": {"x": {"n": 1}}})
    assert b.state == "ready"


def test_a_run_that_moved_recently_is_not_stalled(old_run):
    set_node(old_run, "a", state="succeeded", finished_at=timezone.now())
    assert not stalled(old_run)
