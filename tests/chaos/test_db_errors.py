"""A real database error (a trigger created by the test, in the worker's own database) while
an Output Dataset node writes its version: the node fails, or retries cleanly, and no partial
version, empty dataset or orphan record file is left."""

import contextlib
from datetime import timedelta
from pathlib import Path
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone
import pytest

from datasets.models import Dataset, DatasetVersion
from pipelines.engine.runs import start_run
from pipelines.models import NodeRun, NodeRunLog
from tests.engine.conftest import all_records, make_dataset, node, wait_for_run
from tests.factories import create_pipeline
from tests.waiting import wait_until

ERROR = "chaos: injected database error"
ROWS = [{"id": i, "text": f"record {i}"} for i in range(5)]


@contextlib.contextmanager
def database_fault(table: str, event: str = "INSERT", condition: str = "1 = 1"):
    """While the table `chaos_fault` holds a row, every `event` on `table` whose row meets
    `condition` (SQL over NEW) fails in the database itself. Yields a switch for the fault."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE chaos_fault (active INTEGER)")
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION chaos_fail() RETURNS trigger AS $$ BEGIN "
                f"IF EXISTS (SELECT 1 FROM chaos_fault) AND ({condition}) THEN RAISE EXCEPTION '{ERROR}'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER chaos_fault BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION chaos_fail()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER chaos_fault BEFORE {event} ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM chaos_fault) AND ({condition}) BEGIN SELECT RAISE(ABORT, '{ERROR}'); END"
            )

    def switch(on: bool) -> None:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO chaos_fault VALUES (1)" if on else "DELETE FROM chaos_fault")

    try:
        switch(True)
        yield switch
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER chaos_fault{f' ON {table}' if connection.vendor == 'postgresql' else ''}")
            if connection.vendor == "postgresql":
                cursor.execute("DROP FUNCTION chaos_fail()")
            cursor.execute("DROP TABLE chaos_fault")


def failing_version_inserts():
    return database_fault(DatasetVersion._meta.db_table)


def stored_files() -> set[Path]:
    root = Path(settings.MEDIA_ROOT)
    return {path.relative_to(root) for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def publish_document(settings_=None):
    publish = {"settings": settings_} if settings_ else {}
    return {
        "name": "publish",
        "nodes": [
            node("read", "input_dataset", dataset="raw"),
            {**node("fresh", "output_dataset", dataset="fresh"), **publish},
            {**node("again", "output_dataset", dataset="curated", mode="append"), **publish},
        ],
        "edges": [
            {"source": "read", "source_handle": "out", "target": "fresh"},
            {"source": "read", "source_handle": "out", "target": "again"},
        ],
    }


@pytest.mark.slow
def test_a_database_error_writing_a_version_fails_the_node_and_leaves_nothing_half_written(engine, alice):
    make_dataset(alice, "raw", ROWS)
    curated = make_dataset(alice, "curated", ROWS[:2])
    pipeline = create_pipeline(alice, publish_document())
    before = stored_files()
    with failing_version_inserts():
        run = wait_for_run(start_run(pipeline, user=alice))
    assert run.state == "failed"
    for key in ("fresh", "again"):
        node_run = NodeRun.objects.get(run=run, node_key=key)
        assert node_run.state == "failed" and ERROR in node_run.error, node_run.error
    # The new dataset is gone with its failed first write; the existing one keeps v1 alone.
    assert not Dataset.objects.filter(owner=alice, name="fresh").exists()
    assert list(curated.versions.values_list("number", flat=True)) == [1]
    assert all_records(curated.versions.get().manifest) == ROWS[:2]
    assert not DatasetVersion.objects.filter(produced_by_run=run).exists()
    assert stored_files() == before  # the parts written before the error were deleted


@pytest.mark.slow
def test_a_retried_node_writes_one_whole_version_after_a_database_error(engine, alice):
    make_dataset(alice, "raw", ROWS)
    curated = make_dataset(alice, "curated", ROWS[:2])
    pipeline = create_pipeline(alice, publish_document({"retries": 1, "retry_backoff_seconds": 3}))
    before = stored_files()
    with failing_version_inserts() as fault:
        run = start_run(pipeline, user=alice)
        deadline = time.monotonic() + 30
        while NodeRunLog.objects.filter(node_run__run=run, message__contains="retrying").count() < 2:
            assert time.monotonic() < deadline, "the first attempts did not fail"
            time.sleep(0.05)
        fault(False)  # the database recovers before the retries (3 s later)
        run = wait_for_run(run)
    assert run.state == "succeeded", run.error
    assert {row.node_key: row.attempt for row in NodeRun.objects.filter(run=run)} == {"read": 1, "fresh": 2, "again": 2}
    fresh = DatasetVersion.objects.get(dataset__owner=alice, dataset__name="fresh")
    assert (fresh.number, all_records(fresh.manifest)) == (1, ROWS)
    assert list(curated.versions.values_list("number", flat=True)) == [2, 1]
    assert all_records(curated.versions.get(number=2).manifest) == ROWS[:2] + ROWS
    # Only the two versions' parts were added: the failed attempts left no file behind.
    added = stored_files() - before
    parts = {part["name"] for version in (fresh, curated.versions.get(number=2)) for part in version.manifest["parts"]}
    assert {str(path) for path in added} == parts


def given_up(node_run: NodeRun) -> bool:
    return node_run.state == "running" and timezone.now() - node_run.heartbeat_at > timedelta(seconds=1.5)


@pytest.mark.slow
def test_a_database_error_recording_success_after_the_version_was_written_keeps_one_version(engine, processes, alice):
    """The version is committed, then recording the node's success fails: the worker gives
    the node up, the sweeper runs it again (attempt 2), which keeps that version."""
    make_dataset(alice, "raw", ROWS)
    curated = make_dataset(alice, "curated", ROWS[:2])
    pipeline = create_pipeline(alice, publish_document())
    success = "NEW.state = 'succeeded' AND NEW.node_key = 'again'"
    with database_fault(NodeRun._meta.db_table, "UPDATE", success) as fault:
        run = start_run(pipeline, user=alice)
        wait_until(lambda: curated.versions.count() == 2, 30, "the version to be written")
        # The worker gave the node up: still `running`, its heartbeat stopped (it beats every 0.5 s).
        wait_until(lambda: given_up(NodeRun.objects.get(run=run, node_key="again")), 30, "the failed success write")
        fault(False)
    processes.start_beat()  # the sweeper finds the node run whose worker gave it up
    run = wait_for_run(run, timeout=60)
    assert run.state == "succeeded", run.error
    again = NodeRun.objects.get(run=run, node_key="again")
    assert again.attempt == 2
    assert list(curated.versions.values_list("number", flat=True)) == [2, 1]  # no third version
    assert again.output["version"] == 2
    assert all_records(curated.versions.get(number=2).manifest) == ROWS[:2] + ROWS
    assert NodeRunLog.objects.filter(node_run=again, message__contains="kept curated v2").exists()
