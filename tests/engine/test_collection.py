"""Data Collection from URLs and SQL on a real worker process.

The worker runs with the suite's environment (tests/suite_environment.py): it may fetch from
any host, but of the non-public addresses only 127.0.0.1 (where the test servers listen);
its SQL connections are `collect` (a SQLite file) and `pg` (the local PostgreSQL).
"""

from __future__ import annotations

import io
from pathlib import Path
import sqlite3
import uuid

from django.conf import settings
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets import records
from datasets.models import Dataset
from nodes import saved_tasks, sql
from pipelines.engine.runs import start_run
from pipelines.models import NodeRun
from tests.engine.conftest import outputs, wait_for_run
from tests.factories import create_pipeline
from tests.nodes.test_fetch import Site, ok, redirect

pytestmark = pytest.mark.slow

ROWS = b'{"id": 1, "text": "one"}\n{"id": 2, "text": "two"}\n'
PAGE = "<html><body><h1>Fractions</h1><p>1/2 + 1/4 = 3/4</p></body></html>"


def parquet_bytes(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


@pytest.fixture
def site():
    running = Site(
        {
            "/rows.jsonl": ok(ROWS, "application/x-ndjson"),
            "/export.csv": ok(b"id,text\n3,three\n", "text/csv"),
            "/api/items": ok(b'[{"id": 4, "text": "four"}]', "application/json"),
            "/table.parquet": ok(parquet_bytes([{"id": 5, "text": "five"}]), "application/octet-stream"),
            "/page": ok(PAGE.encode(), "text/html; charset=utf-8"),
            "/big.jsonl": ok(ROWS * 1000, "application/x-ndjson", length=False),
            "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        }
    )
    yield running
    running.close()


def collect_document(**config) -> dict:
    return {
        "name": f"collect {uuid.uuid4().hex[:8]}",
        "nodes": [
            {"key": "grab", "type": "data_collection", "config": config},
            {"key": "keep", "type": "output_dataset", "config": {"dataset": "collected"}},
        ],
        "edges": [{"source": "grab", "source_handle": "out", "target": "keep"}],
    }


def run_collection(owner, **config):
    return wait_for_run(start_run(create_pipeline(owner, collect_document(**config)), user=owner))


def collected(owner) -> list[dict]:
    version = Dataset.objects.get(owner=owner, name="collected").versions.get()
    return [record for batch in records.iter_records(version.manifest) for record in batch]


def artifact_files(run, node_key="grab") -> list[Path]:
    """The node's artifact parts. (Only this node's: on SQLite a flushed test database hands
    out run ids again, so an earlier test's run may have left parts under the same run id.)"""
    folder = Path(settings.MEDIA_ROOT) / "artifacts" / f"run-{run.pk}"
    return [path for path in folder.glob(f"{node_key}-*/**/*") if path.is_file()]


# --- http ---------------------------------------------------------------------------


def test_urls_in_every_format_are_collected_as_records(engine, alice, site):
    urls = [site.url(path) for path in ("/rows.jsonl", "/export.csv", "/api/items", "/table.parquet", "/page")]
    run = run_collection(alice, source="http", urls=urls)
    assert run.state == "succeeded", run.error
    assert collected(alice) == [
        {"id": 1, "text": "one"},
        {"id": 2, "text": "two"},
        {"id": "3", "text": "three"},  # CSV values are strings, as in dataset import
        {"id": 4, "text": "four"},
        {"id": 5, "text": "five"},
        {"url": site.url("/page"), "text": PAGE},
    ]
    grab = outputs(run)["grab"]
    assert grab["count"] == 6 and grab["urls"] == 5


def test_a_body_over_max_bytes_fails_the_node_naming_the_url_and_leaves_nothing(engine, alice, site):
    run = run_collection(alice, source="http", urls=[site.url("/rows.jsonl"), site.url("/big.jsonl")], max_bytes=10_000)
    assert run.state == "failed"
    assert f"urls[1]: {site.url('/big.jsonl')}: the body is larger than max_bytes (10000 bytes)" in run.error
    assert NodeRun.objects.get(run=run, node_key="grab").output in (None, {})
    assert artifact_files(run) == []
    assert not Dataset.objects.filter(owner=alice, name="collected").exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/rows.jsonl", "10.0.0.1 is a private address"),
        ("http://127.0.0.2:{port}/rows.jsonl", "127.0.0.2 is a loopback address"),
        ("http://[::1]:{port}/rows.jsonl", "::1 is a loopback address"),
        ("http://127.0.0.1:{port}/to-metadata", "169.254.169.254 is a link-local address"),
    ],
)
def test_refused_addresses_fail_the_run_naming_the_url(engine, alice, site, url, problem):
    url = url.format(port=site.port)
    run = run_collection(alice, source="http", urls=[site.url("/rows.jsonl"), url])
    assert run.state == "failed"
    assert f"urls[1]: {url}" in run.error, run.error
    assert problem in run.error and "refused" in run.error
    assert [request["path"] for request in site.requests if request["path"] != "/to-metadata"] == ["/rows.jsonl"]
    assert artifact_files(run) == []


def test_a_url_from_a_parameter_is_checked_when_the_run_resolves_it(engine, alice, site):
    document = collect_document(source="http", urls=["{{ params.url }}"])
    document["parameters"] = [{"name": "url", "type": "string"}]
    pipeline = create_pipeline(alice, document)

    good = wait_for_run(start_run(pipeline, {"url": site.url("/rows.jsonl")}, user=alice))
    assert good.state == "succeeded", good.error
    bad = wait_for_run(start_run(pipeline, {"url": "file:///etc/passwd"}, user=alice))
    assert bad.state == "failed"
    assert "urls[0]: not an http(s) URL" in bad.error


# --- saved tasks --------------------------------------------------------------------


def test_a_saved_task_supplies_the_source_and_the_node_overrides_it(engine, alice, site):
    saved_tasks.create_saved_task(
        owner=alice,
        kind="collection",
        name="feeds",
        config={"source": "http", "urls": [site.url("/export.csv")], "format": "csv"},
    )
    run = run_collection(alice, task="feeds", urls=[site.url("/rows.jsonl")], format="auto")
    assert run.state == "succeeded", run.error
    assert collected(alice) == [{"id": 1, "text": "one"}, {"id": 2, "text": "two"}]
    assert outputs(run)["grab"]["task"] == "feeds"

    missing = run_collection(alice, task="gone")
    assert missing.state == "failed"
    assert "task: no saved collection task named 'gone'" in missing.error


# --- sql ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_source():
    path = Path(sql.configured_connections()["collect"].database)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, score REAL)")
        db.executemany("INSERT INTO articles VALUES (?, ?, ?)", [(i, f"title {i}", i / 4) for i in range(1, 2501)])
    db.close()
    yield path
    path.unlink(missing_ok=True)


def test_rows_of_a_sqlite_query_are_collected(engine, alice, sqlite_source):
    run = run_collection(alice, source="sql", connection="collect", query="SELECT * FROM articles ORDER BY id")
    assert run.state == "succeeded", run.error
    rows = collected(alice)
    assert len(rows) == 2500
    assert rows[0] == {"id": 1, "title": "title 1", "score": 0.25}
    assert rows[-1] == {"id": 2500, "title": "title 2500", "score": 625.0}
    assert outputs(run)["grab"]["connection"] == "collect"


def test_a_writing_sqlite_query_fails_and_changes_nothing(engine, alice, sqlite_source):
    run = run_collection(
        alice, source="sql", connection="collect", query="WITH doomed AS (SELECT 1) DELETE FROM articles"
    )
    assert run.state == "failed"
    assert "query: not authorized: the query may only read" in run.error
    with sqlite3.connect(sqlite_source) as db:
        assert db.execute("SELECT count(*) FROM articles").fetchone() == (2500,)
    db.close()


@pytest.fixture
def pg_table():
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    table = f"collect_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, price numeric(8, 2), day date)")
    admin.execute(f"INSERT INTO {table} SELECT i, i * 1.25, date '2024-01-01' + i FROM generate_series(1, 1500) i")
    yield admin, table
    admin.execute(f"DROP TABLE {table}")
    admin.close()


def test_rows_of_a_postgresql_query_are_collected_read_only(engine, alice, pg_table):
    admin, table = pg_table
    run = run_collection(alice, source="sql", connection="pg", query=f"SELECT * FROM {table} ORDER BY id")
    assert run.state == "succeeded", run.error
    rows = collected(alice)
    assert len(rows) == 1500
    assert rows[0] == {"id": 1, "price": "1.25", "day": "2024-01-02"}

    deleting = run_collection(
        alice, source="sql", connection="pg", query=f"WITH gone AS (DELETE FROM {table} RETURNING *) SELECT * FROM gone"
    )
    assert deleting.state == "failed" and "query: " in deleting.error
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (1500,)
