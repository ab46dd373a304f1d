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
    claimed = statements.claim_node_run(ready.pk, now, "w1@host pid 7")
    fresh = NodeRun.objects.get(pk=ready.pk)
    assert fresh.state == "running" and fresh.started_at == now and fresh.heartbeat_at == now
    assert fresh.worker == "w1@host pid 7"
    for field in NodeRun._meta.concrete_fields:
        assert getattr(claimed, field.attname) == getattr(fresh, field.attname), field.name
    assert statements.claim_node_run(ready.pk, now, "w2@host pid 8") is None  # claimed once only


def test_a_claim_waits_for_a_retry_to_be_due_give_or_take_the_clock_tolerance(run):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    node = NodeRun.objects.get(run=run, node_key="a")
    NodeRun.objects.filter(pk=node.pk).update(ready_at=now + timedelta(seconds=5))
    assert statements.claim_node_run(node.pk, now, "w") is None
    assert statements.claim_node_run(node.pk, now + timedelta(seconds=4.5), "w") is not None  # within 1 s


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


def ending(finished):
    return {"state": "succeeded", "output": {"n": 1}, "handles": ["out"], "progress": 1.0, "finished_at": finished}


def test_the_last_node_run_ending_ends_its_run_in_the_same_call(run):
    from django.utils import timezone

    set_states(run, a="succeeded", b="succeeded", c="running")
    row = NodeRun.objects.get(run=run, node_key="c")
    now = timezone.now()
    assert statements.end_node_and_run(row.pk, 1, ["running", "waiting"], ending(now), run.pk, now) == (True, True)
    row.refresh_from_db()
    run.refresh_from_db()
    assert (row.state, row.output, row.handles, row.finished_at) == ("succeeded", {"n": 1}, ["out"], now)
    assert (run.state, run.error, run.finished_at) == ("succeeded", "", now)


@pytest.mark.parametrize(
    ("others", "attempt", "moves"),
    [
        ({"a": "succeeded", "b": "running"}, 1, True),  # another node is still running
        ({"a": "succeeded", "b": "ready"}, 1, True),
        ({"a": ("failed", []), "b": "skipped"}, 1, True),  # a failure nothing handled
        ({"a": "succeeded", "b": "succeeded"}, 2, False),  # c is on another attempt
    ],
)
def test_a_node_run_ends_without_its_run_while_the_run_cannot_succeed(run, others, attempt, moves):
    from django.utils import timezone

    set_states(run, c="running", **others)
    row = NodeRun.objects.get(run=run, node_key="c")
    now = timezone.now()
    assert statements.end_node_and_run(row.pk, attempt, ["running"], ending(now), run.pk, now) == (moves, False)
    assert NodeRun.objects.get(pk=row.pk).state == ("succeeded" if moves else "running")
    run.refresh_from_db()
    assert (run.state, run.finished_at) == ("running", None)


def test_a_node_run_that_did_not_move_never_ends_its_run(run):
    from django.utils import timezone

    set_states(run, a="succeeded", b="succeeded", c="succeeded")  # already ended, e.g. by a duplicate
    row = NodeRun.objects.get(run=run, node_key="c")
    now = timezone.now()
    assert statements.end_node_and_run(row.pk, 1, ["running"], ending(now), run.pk, now) == (False, False)
    assert Run.objects.get(pk=run.pk).state == "running"


@pytest.mark.django_db(transaction=True)
def test_two_node_runs_ending_at_once_may_leave_the_run_to_the_check_after_their_commits(alice):
    """Why runtime.succeed checks the run again after its commit: on PostgreSQL each of two
    ending statements reads a snapshot in which the other node run is still running."""
    import threading

    from django.db import connection, connections, transaction
    from django.utils import timezone

    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time: two ends cannot overlap")
    # Committed here, so rows made without start_run: no task may reach the session's worker.
    pipeline = create_pipeline(alice, {"name": "two ends", "nodes": [step("a"), step("b"), step("c")], "edges": []})
    run = Run.objects.create(pipeline=pipeline, version=pipeline.version, spec={}, state="running")
    states = {"a": "succeeded", "b": "running", "c": "running"}
    rows = {key: NodeRun.objects.create(run=run, node_key=key, state=state).pk for key, state in states.items()}
    now = timezone.now()
    ended_b, proceed, results = threading.Event(), threading.Event(), {}

    def end_b_and_hold_the_commit():
        try:
            with transaction.atomic():
                results["b"] = statements.end_node_and_run(rows["b"], 1, ["running"], ending(now), run.pk, now)
                ended_b.set()
                proceed.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=end_b_and_hold_the_commit)
    thread.start()
    assert ended_b.wait(10)
    results["c"] = statements.end_node_and_run(rows["c"], 1, ["running"], ending(now), run.pk, now)
    proceed.set()
    thread.join(10)
    assert results == {"b": (True, False), "c": (True, False)}
    assert Run.objects.get(pk=run.pk).state == "running"
    assert statements.succeed_run_if_all_done(run.pk, now) is True  # the check after both commits


def test_inserted_rows_are_what_the_orm_writes(run):
    from django.utils import timezone

    now = timezone.now()
    made = [NodeRun(run=run, node_key=f"x{i}", state="ready", ready_at=now, handles=["out"]) for i in range(150)]
    statements.insert(made)  # more rows than SQLite takes in one statement
    by_orm = NodeRun.objects.create(run=run, node_key="orm", state="ready", ready_at=now, handles=["out"])
    stored = {row.pk: row for row in NodeRun.objects.filter(run=run, node_key__startswith="x")}
    assert [row.pk for row in made] == sorted(stored) and len(stored) == 150
    assert all(not row._state.adding for row in made)
    for field in NodeRun._meta.concrete_fields:
        if field.name not in ("id", "node_key"):
            assert getattr(stored[made[0].pk], field.attname) == getattr(by_orm, field.attname), field.name
            assert getattr(made[-1], field.attname) == getattr(by_orm, field.attname), field.name


def test_an_inserted_run_gets_its_defaults_and_creation_time(run):
    copy = Run(pipeline=run.pipeline, version=run.version, spec=run.spec, created_by=run.created_by)
    statements.insert([copy])
    stored = Run.objects.get(pk=copy.pk)
    assert (stored.state, stored.params, stored.trigger, stored.error) == ("pending", {}, "manual", "")
    assert stored.spec == run.spec and stored.created_at == copy.created_at is not None


def test_a_run_and_its_node_runs_are_inserted_together(run):
    from django.utils import timezone

    now = timezone.now()
    copy = Run(pipeline=run.pipeline, version=run.version, spec=run.spec, params={"limit": 1}, state="running")
    rows = [
        NodeRun(run=copy, node_key=key, state=state, ready_at=now, output={"n": index} if index else None)
        for index, (key, state) in enumerate([("a", "ready"), ("b", "pending"), ("c", "succeeded")])
    ]
    statements.insert_run(copy, rows)
    stored = Run.objects.get(pk=copy.pk)
    assert (stored.params, stored.state, stored.created_at) == ({"limit": 1}, "running", copy.created_at)
    by_key = {row.node_key: row for row in NodeRun.objects.filter(run=copy)}
    assert {key: row.pk for key, row in by_key.items()} == {row.node_key: row.pk for row in rows}
    assert [(by_key[r.node_key].state, by_key[r.node_key].output, by_key[r.node_key].ready_at) for r in rows] == [
        ("ready", None, now),
        ("pending", {"n": 1}, now),
        ("succeeded", {"n": 2}, now),
    ]
    assert all(row.run_id == copy.pk and not row._state.adding for row in rows)
    assert by_key["a"].attempt == 1 and by_key["a"].iteration == "" and by_key["a"].heartbeat_at is None


def test_postgresql_prepares_the_engine_statements_once_used_twice_and_never_the_orms(run):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return [statement for (statement,) in cursor.fetchall()]

    def scope_statements() -> list[str]:
        return [s for s in prepared() if "pipelines_noderun" in s and "node_key" in s and "IN ($3, $4)" in s]

    assert statements.scope_states(run.pk, "", {"a", "b"}).keys() == {"a", "b"}
    assert scope_statements() == []  # used once: not worth preparing
    for _ in range(3):
        assert statements.scope_states(run.pk, "", {"a", "b"}).keys() == {"a", "b"}
        assert NodeRun.objects.filter(run=run, node_key__in=["a", "b"]).count() == 2
    assert len(scope_statements()) == 1
    assert not [s for s in prepared() if "COUNT(" in s.upper()]  # the ORM's query, run as often
