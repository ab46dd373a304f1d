"""SQL queries as a Data Collection source: named connections, read-only, streamed.

Connections are configured, never written in a node: `DATAMATE_SQL_CONNECTIONS` holds
`name=url` pairs separated by `;`, with SQLAlchemy URLs (`postgres://` and `postgresql://`
use psycopg 3; percent-encode a `;` in a password). A node names one in `connection` and
gives a `query`.

The query runs read-only, with a timeout:
- PostgreSQL: `SET TRANSACTION READ ONLY` and `SET LOCAL statement_timeout`; the rows come
  through a server-side cursor (DECLARE … CURSOR FOR), which takes a single SELECT, so a
  second statement (`; COMMIT; DROP …`) cannot slip out of the transaction either.
- SQLite: the file is opened read-only (`mode=ro`, so a missing file is not created) with
  `PRAGMA query_only`; sqlite3 runs one statement per call, and a progress handler stops a
  query that runs past the timeout.
Other databases are refused: for them this module could not promise read-only.

Rows stream in batches (`yield_per`). Values become JSON: dates and times ISO 8601 strings,
Decimals exact strings ("12.50"; cast in SQL, e.g. `amount::float8`, to get numbers),
intervals seconds, bytes base64, UUIDs and other types their text.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
import decimal
import math
import re
import sqlite3
import time
from typing import Any
from urllib.parse import quote

from django.conf import settings
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

SETTING = "DATAMATE_SQL_CONNECTIONS"
BATCH_SIZE = 1000
#: SQLite calls the progress handler every this many virtual machine steps.
_SQLITE_PROGRESS_STEPS = 10_000
#: What a SQLite query may do (sqlite3 authorizer action codes): read tables, call functions.
_SQLITE_READING = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
#: How a query that returns rows starts; anything else is refused before it reaches the database
#: (which would refuse it too, being read-only: this is for a clearer message).
READING_KEYWORDS = frozenset({"select", "with", "values", "table"})
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)


class SqlSourceError(Exception):
    """Bad configuration or a failed query; `field` is the node config field it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def configured_connections() -> dict[str, sa.URL]:
    """The connections of DATAMATE_SQL_CONNECTIONS, by name."""
    connections: dict[str, sa.URL] = {}
    for number, item in enumerate(settings.DATAMATE_SQL_CONNECTIONS.split(";"), 1):
        if not item.strip():
            continue
        name, _, raw_url = (part.strip() for part in item.partition("="))
        if not name or not raw_url:
            # (the entry itself is not shown: it may hold a password)
            raise SqlSourceError("connection", f"{SETTING}: entry {number} is not name=url")
        try:
            url = sa.make_url(raw_url)
        except sa.exc.ArgumentError:
            raise SqlSourceError("connection", f"{SETTING}: the URL of {name!r} is not a database URL") from None
        if url.drivername in ("postgres", "postgresql"):
            url = url.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
        connections[name] = url
    return connections


def connection_url(name: str) -> sa.URL:
    connections = configured_connections()
    if name not in connections:
        known = ", ".join(sorted(connections)) or f"none; set {SETTING}"
        raise SqlSourceError("connection", f"no connection named {name!r} (configured: {known})")
    url = connections[name]
    backend = url.get_backend_name()
    if backend not in ("postgresql", "sqlite"):
        raise SqlSourceError(
            "connection", f"{name!r} is a {backend} database; only PostgreSQL and SQLite are queried (read-only)"
        )
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        # A URI filename opens the file read-only (and never creates it).
        url = url.set(database=f"file:{quote(url.database, safe='/')}?mode=ro", query={"uri": "true"})
    return url


def query_problem(query: str) -> str | None:
    """Why `query` cannot collect rows, judged from its first keyword; None if it may."""
    match = re.match(r"\w+", query[_LEADING_NOISE.match(query).end() :])
    if match is None:
        return "write a SELECT query"
    if match.group().lower() not in READING_KEYWORDS:
        return f"only a SELECT (or WITH, VALUES, TABLE) query collects rows, not {match.group().upper()}"
    return None


def query_batches(name: str, query: str, *, timeout: float, batch_size: int = BATCH_SIZE) -> Iterator[list[dict]]:
    """The rows of `query` on connection `name`, as batches of JSON records."""
    problem = query_problem(query)
    if problem:
        raise SqlSourceError("query", problem)
    url = connection_url(name)
    engine = sa.create_engine(url, poolclass=NullPool)
    deadline = time.monotonic() + timeout
    try:
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as error:
            raise SqlSourceError("connection", f"cannot connect to {name!r}: {_driver_message(error)}") from None
        with connection:
            try:
                _begin_read_only(connection, timeout, deadline)
                result = connection.execution_options(yield_per=batch_size).exec_driver_sql(query)
                if not result.returns_rows:
                    raise SqlSourceError("query", "returns no rows: write a SELECT")
                columns = _column_names(list(result.keys()))
                for rows in result.partitions(batch_size):
                    yield [dict(zip(columns, (json_value(value) for value in row), strict=True)) for row in rows]
                    if time.monotonic() > deadline:
                        raise SqlSourceError("query", f"took longer than {timeout:g} s (timeout_seconds)")
            except sa.exc.DBAPIError as error:
                if _interrupted(error) and time.monotonic() > deadline:
                    raise SqlSourceError("query", f"took longer than {timeout:g} s (timeout_seconds)") from None
                raise SqlSourceError("query", _driver_message(error)) from None
    finally:
        engine.dispose()


def _begin_read_only(connection: sa.Connection, timeout: float, deadline: float) -> None:
    if connection.dialect.name == "postgresql":
        # The first statements of the transaction SQLAlchemy begins; it is rolled back at the end.
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
        return
    connection.exec_driver_sql("PRAGMA query_only = ON")
    raw = connection.connection.driver_connection
    # ATTACH would create a missing file, and a PRAGMA could turn query_only off: SQLite
    # asks the authorizer about every action of a statement, and only reading passes.
    raw.set_authorizer(lambda action, *_: sqlite3.SQLITE_OK if action in _SQLITE_READING else sqlite3.SQLITE_DENY)
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _SQLITE_PROGRESS_STEPS)


def _interrupted(error: sa.exc.DBAPIError) -> bool:
    return isinstance(error.orig, sqlite3.OperationalError) and str(error.orig) == "interrupted"


def _driver_message(error: sa.exc.DBAPIError) -> str:
    message = str(error.orig).strip()
    if isinstance(error.orig, sqlite3.DatabaseError) and message == "not authorized":
        return "not authorized: the query may only read"
    return message.splitlines()[0] if message else type(error.orig).__name__


def _column_names(columns: list[str]) -> list[str]:
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise SqlSourceError("query", f"two columns are named {column!r}: name them apart with AS")
        seen.add(column)
    return columns


def json_value(value: Any) -> Any:
    """A database value as JSON (see the module docstring for the choices)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or Infinity
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact; a float would round NUMERIC(38, 10)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(item) for item in value]
    return str(value)  # UUID, inet, ranges, enums …
