"""SQL as a collection source: a real SQLite file and the real PostgreSQL on 127.0.0.1:5432.

The PostgreSQL tests skip only when no server answers there. Each makes its own table (a
unique name in the `postgres` database) and drops it afterwards.
"""

from __future__ import annotations

import sqlite3
import uuid

import psycopg
import pytest

from nodes import sql

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def sqlite_file(tmp_path, settings):
    path = tmp_path / "shop.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price NUMERIC, added TEXT)")
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?)", [(i, f"item {i}", i * 1.5, "2024-05-01") for i in range(2500)]
        )
    db.close()
    settings.DATAMATE_SQL_CONNECTIONS = f"shop=sqlite:///{path}; missing=sqlite:///{tmp_path / 'missing.sqlite3'}"
    return path


def rows(name: str, query: str, **options) -> list[dict]:
    return [
        row for batch in sql.query_batches(name, query, timeout=options.pop("timeout", 5), **options) for row in batch
    ]


def sqlite_count(path, table="items") -> int:
    with sqlite3.connect(path) as db:
        count = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    db.close()
    return count


# --- connections --------------------------------------------------------------------


def test_connections_come_from_the_setting(settings):
    settings.DATAMATE_SQL_CONNECTIONS = "a=sqlite:////tmp/a.db ; b=postgres://u:pw@db:5432/x;"
    connections = sql.configured_connections()
    assert sorted(connections) == ["a", "b"]
    assert connections["b"].drivername == "postgresql+psycopg"  # psycopg 3, what we ship

    with pytest.raises(sql.SqlSourceError, match=r"^connection: no connection named 'c' \(configured: a, b\)$"):
        sql.connection_url("c")

    settings.DATAMATE_SQL_CONNECTIONS = "a=sqlite:///a.db;just-a-name"
    with pytest.raises(sql.SqlSourceError, match=r"^connection: DATAMATE_SQL_CONNECTIONS: entry 2 is not name=url$"):
        sql.configured_connections()

    settings.DATAMATE_SQL_CONNECTIONS = "legacy=mysql://u:pw@db/x"
    with pytest.raises(sql.SqlSourceError, match="'legacy' is a mysql database; only PostgreSQL and SQLite"):
        sql.connection_url("legacy")


def test_only_reading_queries_are_accepted():
    assert sql.query_problem("  -- the cheap ones\n/* all */ SELECT * FROM items") is None
    assert sql.query_problem("with recent as (select 1) select * from recent") is None
    assert "not UPDATE" in sql.query_problem("UPDATE items SET price = 0")
    assert "not DROP" in sql.query_problem("drop table items")
    assert sql.query_problem("  ") == "write a SELECT query"


# --- SQLite -------------------------------------------------------------------------


def test_sqlite_rows_stream_in_batches_equal_to_the_table(sqlite_file):
    batches = list(
        sql.query_batches("shop", "SELECT id, name, price FROM items ORDER BY id", timeout=5, batch_size=1000)
    )
    assert [len(batch) for batch in batches] == [1000, 1000, 500]
    assert batches[0][:2] == [{"id": 0, "name": "item 0", "price": 0}, {"id": 1, "name": "item 1", "price": 1.5}]
    assert batches[2][-1] == {"id": 2499, "name": "item 2499", "price": 3748.5}


def test_sqlite_is_read_only(sqlite_file, tmp_path):
    attached = tmp_path / "attached.sqlite3"
    writes = [
        # Past the first-keyword check: the database itself refuses.
        "WITH doomed AS (SELECT 1) DELETE FROM items",
        "WITH x AS (SELECT 1) INSERT INTO items (id) SELECT 99999",
        "SELECT 1; DROP TABLE items",
        "SELECT * FROM pragma_table_info('items')",  # PRAGMAs could switch query_only off
    ]
    for query in writes:
        with pytest.raises(sql.SqlSourceError) as refused:
            rows("shop", query)
        assert refused.value.field == "query", query
    with pytest.raises(sql.SqlSourceError, match="not ATTACH"):
        rows("shop", f"ATTACH DATABASE '{attached}' AS other")
    assert sqlite_count(sqlite_file) == 2500
    assert not attached.exists()


def test_a_missing_sqlite_file_is_an_error_not_a_new_database(sqlite_file, tmp_path):
    with pytest.raises(sql.SqlSourceError, match=r"^connection: cannot connect to 'missing': unable to open"):
        rows("missing", "SELECT 1")
    assert not (tmp_path / "missing.sqlite3").exists()


def test_a_sqlite_query_past_its_timeout_is_stopped(sqlite_file):
    endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    with pytest.raises(sql.SqlSourceError, match=r"^query: took longer than 0\.5 s \(timeout_seconds\)$"):
        rows("shop", endless, timeout=0.5)


def test_query_errors_name_the_field_with_the_driver_message(sqlite_file):
    with pytest.raises(sql.SqlSourceError, match=r"^query: no such table: nope$"):
        rows("shop", "SELECT * FROM nope")
    with pytest.raises(sql.SqlSourceError, match=r"^query: two columns are named 'id'"):
        rows("shop", "SELECT a.id, b.id FROM items a JOIN items b ON a.id = b.id")


def test_values_become_json():
    import datetime
    import decimal

    assert sql.json_value(decimal.Decimal("12.50")) == "12.50"
    assert sql.json_value(datetime.date(2024, 5, 1)) == "2024-05-01"
    assert sql.json_value(datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)) == "2024-05-01T12:30:00+00:00"
    assert sql.json_value(datetime.timedelta(minutes=2)) == 120.0
    assert sql.json_value(b"\x01\x02") == "AQI="
    assert sql.json_value(float("nan")) == "nan"
    assert sql.json_value({"tags": ("a", decimal.Decimal("1"))}) == {"tags": ["a", "1"]}


# --- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def pg(settings):
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    table = f"collect_{uuid.uuid4().hex[:12]}"
    admin.execute(
        f"CREATE TABLE {table} (id int PRIMARY KEY, price numeric(10, 2), sold_at timestamptz, day date,"
        " raw bytea, meta jsonb, ref uuid, tags text[])"
    )
    admin.execute(f"CREATE SEQUENCE {table}_seq")
    admin.execute(
        f"INSERT INTO {table} VALUES (1, 12.50, '2024-05-01 12:30:00+00', '2024-05-01', '\\x0102',"
        " '{\"lang\": \"en\"}', '6f1c0c5e-0a52-4a8e-9d55-1f6d3b0c7a10', '{a,b}')"
    )
    admin.execute(
        f"CREATE FUNCTION {table}_sneaky() RETURNS int LANGUAGE sql AS $$ DELETE FROM {table} RETURNING id $$"
    )
    settings.DATAMATE_SQL_CONNECTIONS = f"pg={PG_URL}"
    yield admin, table
    admin.execute(f"DROP FUNCTION {table}_sneaky(); DROP SEQUENCE {table}_seq; DROP TABLE {table}")
    admin.close()


def test_postgresql_rows_with_their_types_as_json(pg):
    _, table = pg
    assert rows("pg", f"SELECT * FROM {table}") == [
        {
            "id": 1,
            "price": "12.50",
            "sold_at": "2024-05-01T12:30:00+00:00",
            "day": "2024-05-01",
            "raw": "AQI=",
            "meta": {"lang": "en"},
            "ref": "6f1c0c5e-0a52-4a8e-9d55-1f6d3b0c7a10",
            "tags": ["a", "b"],
        }
    ]
    assert rows("pg", "SELECT current_setting('transaction_read_only') AS read_only") == [{"read_only": "on"}]


def test_postgresql_runs_the_query_read_only(pg):
    admin, table = pg
    attempts = {
        f"WITH gone AS (DELETE FROM {table} RETURNING id) SELECT * FROM gone": "",
        f"SELECT {table}_sneaky()": "read-only transaction",
        f"SELECT nextval('{table}_seq')": "read-only transaction",
        f"SELECT 1; DROP TABLE {table}": "",
    }
    for query, message in attempts.items():
        with pytest.raises(sql.SqlSourceError) as refused:
            rows("pg", query)
        assert refused.value.field == "query" and message in refused.value.message, query
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
    assert admin.execute(f"SELECT nextval('{table}_seq')").fetchone() == (1,)


def test_postgresql_statement_timeout(pg):
    with pytest.raises(sql.SqlSourceError, match=r"^query: canceling statement due to statement timeout"):
        rows("pg", "SELECT pg_sleep(5)", timeout=0.3)


def test_postgresql_connection_failures_name_the_connection(settings):
    settings.DATAMATE_SQL_CONNECTIONS = "gone=postgresql://postgres@127.0.0.1:5432/no_such_database_here"
    with pytest.raises(sql.SqlSourceError, match=r"^connection: cannot connect to 'gone': "):
        rows("gone", "SELECT 1")
