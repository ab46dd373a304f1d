"""The engine's hand-written statements (pipelines/engine/statements.py) read and write what
the ORM would, on SQLite and on PostgreSQL alike. No worker: the rows are set up directly."""

from kombu import serialization
import pytest

from pipelines.engine import runtime, statements
from pipelines.engine.runs import start_run
from pipelines.models import NodeRun, Run
from tests.engine.test_basic_runs import edge, step
from tests.factories import create_pipeline


@pytest.fixture
def run(alice):
    document = {
        "name": "three",
        "parameters": [{"name": "limit", "type": "integer", "default": 3}],
        "nodes": [step("a"), step("b"), step("c")],
        "edges": [edge("a", "b")],
    }
    # Inside the test's transaction nothing is committed, so nothing is sent to a worker.
    return start_run(create_pipeline(alice, document), {"limit": 7}, user=alice)


def set_states(run, **states):
    for key, value in states.items():
        state, handles = value if isinstance(value, tuple) else (value, None)
        NodeRun.objects.filter(run=run, node_key=key).update(state=state, handles=handles)


@pytest.mark.parametrize(
    ("states", "succeeds"),
    [
        ({"a": "succeeded", "b": "succeeded", "c": "cached"}, True),
        ({"a": ("failed", ["error"]), "b": "succeeded", "c": "skipped"}, True),  # a failure routed on
        ({"a": "succeeded", "b": "running", "c": "succeeded"}, False),
        ({"a": "succeeded", "b": "succeeded", "c": "waiting"}, False),
        ({"a": ("failed", []), "b": "skipped", "c": "succeeded"}, False),  # unhandled
        ({"a": ("failed", None), "b": "skipped", "c": "succeeded"}, False),
        ({"a": ("failed", ["out"]), "b": "succeeded", "c": "succeeded"}, False),
    ],
)
def test_the_run_succeeds_only_when_nothing_is_left_and_no_failure_is_unhandled(run, states, succeeds):
    from django.utils import timezone

    set_states(run, **states)
    now = timezone.now()
    assert statements.succeed_run_if_all_done(run.pk, now) is succeeds
    run.refresh_from_db()
    if succeeds:
        assert (run.state, run.error, run.finished_at) == ("succeeded", "", now)
        assert statements.succeed_run_if_all_done(run.pk, now) is False  # only once
    else:
        assert (run.state, run.finished_at) == ("running", None)


def test_the_run_statement_ignores_node_runs_inside_loop_iterations(run):
    set_states(run, a="succeeded", b="succeeded", c="succeeded")
    NodeRun.objects.create(run=run, node_key="a", iteration="loop:0", state="running")
    assert statements.succeed_run_if_all_done(run.pk, run.started_at) is True


def test_a_node_run_moves_only_from_the_named_states_on_its_attempt(run):
    from django.utils import timezone

    row = NodeRun.objects.get(run=run, node_key="a")  # ready, attempt 1
    finished = timezone.now()
    changes = {"state": "succeeded", "output": {"n": 1, "text": "é"}, "handles": ["out"], "finished_at": finished}
    assert statements.update_node_run(row.pk, 2, ["ready"], changes) is False  # another attempt
    assert statements.update_node_run(row.pk, 1, ["running", "waiting"], changes) is False  # another state
    assert NodeRun.objects.get(pk=row.pk).state == "ready"
    assert statements.update_node_run(row.pk, 1, ["running", "ready"], changes) is True
    row.refresh_from_db()
    assert (row.state, row.output, row.handles, row.finished_at) == ("succeeded", changes["output"], ["out"], finished)
    # None writes SQL NULL, as the ORM's update() does.
    assert statements.update_node_run(row.pk, 1, ["succeeded"], {"handles": None, "records_in": None}) is True
    assert NodeRun.objects.filter(pk=row.pk, handles__isnull=True, records_in__isnull=True).exists()


def test_claiming_returns_the_row_as_the_orm_reads_it(run):
    from django.utils import timezone

    ready = NodeRun.objects.get(run=run, node_key="a")
    now = timezone.now()
    claimed = statements.claim_node_run(ready.pk, now)
    fresh = NodeRun.objects.get(pk=ready.pk)
    assert fresh.state == "running" and fresh.started_at == now and fresh.heartbeat_at == now
    for field in NodeRun._meta.concrete_fields:
        assert getattr(claimed, field.attname) == getattr(fresh, field.attname), field.name
    assert statements.claim_node_run(ready.pk, now) is None  # claimed once only


def test_scope_states_reads_the_named_node_runs_of_one_scope(run):
    set_states(run, a=("failed", ["error"]), b="skipped")
    NodeRun.objects.create(run=run, node_key="a", iteration="loop:0", state="running")
    found = statements.scope_states(run.pk, "", {"a", "b", "missing"})
    rows = {row.node_key: row for row in NodeRun.objects.filter(run=run, iteration="")}
    assert found == {
        "a": ("failed", ["error"], rows["a"].pk, 1),
        "b": ("skipped", None, rows["b"].pk, 1),
    }


def test_reading_a_run_gives_what_select_related_gives(run):
    read = statements.read_run(run.pk)
    expected = Run.objects.select_related("pipeline").get(pk=run.pk)
    assert read.get_deferred_fields() == {"spec"}
    for field in Run._meta.concrete_fields:
        if field.name != "spec":
            assert getattr(read, field.attname) == getattr(expected, field.attname), field.name
    for field in read.pipeline._meta.concrete_fields:
        assert getattr(read.pipeline, field.attname) == getattr(expected.pipeline, field.attname), field.name
    assert read.spec == expected.spec  # loaded when asked for
    with pytest.raises(Run.DoesNotExist):
        statements.read_run(run.pk + 1000)


def test_a_task_message_carries_what_the_worker_needs_of_the_run(run, django_assert_num_queries):
    """Through Celery's own JSON serializer, as a worker receives it: no query to rebuild the
    run, and what it does not carry (the state) is read when asked for."""
    content_type, encoding, body = serialization.dumps(runtime.run_message(run), serializer="json")
    message = serialization.loads(body, content_type, encoding)
    runtime._runs.pop(run.pk, None)  # as in a worker that has not seen this run yet
    with django_assert_num_queries(0):
        carried = runtime.run_for(run.pk, message)
        assert (carried.params, carried.version, carried.started_at) == ({"limit": 7}, run.version, run.started_at)
        assert (carried.pipeline.pk, carried.pipeline.created_at) == (run.pipeline.pk, run.pipeline.created_at)
        assert carried.pipeline.owner_id == run.pipeline.owner_id
        assert runtime.run_for(run.pk) is carried
    Run.objects.filter(pk=run.pk).update(state="cancelled")
    assert carried.state == "cancelled"
    runtime._runs.pop(run.pk, None)
