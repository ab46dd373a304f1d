"""The engine's hottest statements, as SQL written once per process.

Django compiles a queryset anew on every call. On the engine's path, a few statements per
node, that cost more than the database itself: the run's final UPDATE took 1.5 ms through
the ORM against 0.15 ms as text on PostgreSQL (0.8 ms against 0.02 ms on SQLite). So these
statements are spelled out here, from the models' own table and column names, and their
values go through the models' own fields both ways, so they read and write exactly what the
ORM would. Both SQLite (3.35+) and PostgreSQL support every form used (RETURNING included),
but two: on PostgreSQL a run is created with its node runs, and a node's end is written with
its run's, in one statement (data-modifying CTEs); on SQLite each is two statements in one
transaction. A run of one node thus costs three round trips and three commits in all: its
creation, the claim, the end. On PostgreSQL they are prepared statements (see _cursor).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
import functools
from typing import Any

from django.db import connections, models, transaction

from pipelines.engine.states import NodeState, RunState
from pipelines.models import NodeRun, Pipeline, Run


def _connection():
    return connections["default"]


def _cursor():
    """A cursor for these statements. On PostgreSQL it binds parameters on the server, so
    psycopg prepares each statement on its second use (settings: `prepare_threshold`) and the
    server parses and plans it once per connection: a one-node run took 1-2 ms less (W3 of
    bench/engine_overhead.py). The ORM's cursors bind on the client and are never prepared."""
    connection = _connection()
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    # What connection.cursor() does, with another cursor class.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = ServerBindingCursor(connection.connection)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


def _quote(name: str) -> str:
    return _connection().ops.quote_name(name)


def _table(model: type[models.Model]) -> str:
    return _quote(model._meta.db_table)


@dataclass(frozen=True)
class _Reader:
    """Turns the columns of `fields` in a result row into a model instance, converting each
    value as the ORM does (JSON decoded, datetimes made aware, ...)."""

    model: type[models.Model]
    fields: tuple[models.Field, ...]
    converters: tuple[tuple, ...]

    @classmethod
    def of(cls, model: type[models.Model], fields: list[models.Field]) -> _Reader:
        connection = _connection()
        converters = []
        for model_field in fields:
            column = model_field.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(column) + model_field.get_db_converters(connection)
            converters.append(tuple((converter, column) for converter in found))
        return cls(model, tuple(fields), tuple(converters))

    def columns(self, alias: str | None = None) -> str:
        prefix = f"{_quote(alias)}." if alias else ""
        return ", ".join(prefix + _quote(model_field.column) for model_field in self.fields)

    def values(self, row: tuple | list, connection=None) -> list[Any]:
        connection = connection or _connection()
        values = []
        for value, converters in zip(row, self.converters, strict=True):
            for converter, column in converters:
                value = converter(value, column, connection)
            values.append(value)
        return values

    def instance(self, row: tuple | list) -> models.Model:
        return self.model.from_db("default", [model_field.attname for model_field in self.fields], self.values(row))


# --- creating rows ---------------------------------------------------------------------


def _placeholders(fields: tuple[models.Field, ...]) -> str:
    return f"({', '.join(['%s'] * len(fields))})"


def _prepared(instances: list[models.Model], fields: tuple[models.Field, ...], connection) -> list[Any]:
    """The instances' values of `fields` as bulk_create writes them (defaults, auto_now_add)."""
    return [f.get_db_prep_save(f.pre_save(instance, True), connection) for instance in instances for f in fields]


def _stored(instances: list[models.Model], connection) -> None:
    for instance in instances:
        instance._state.adding, instance._state.db = False, connection.alias


@functools.lru_cache(maxsize=256)
def _insert(vendor: str, model: type[models.Model], rows: int) -> tuple[str, tuple[models.Field, ...]]:
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key)
    columns = ", ".join(_quote(f.column) for f in fields)
    values = ", ".join([_placeholders(fields)] * rows)
    return f"INSERT INTO {_table(model)} ({columns}) VALUES {values} RETURNING {_quote(model._meta.pk.column)}", fields


def insert(instances: list[models.Model]) -> None:
    """Insert new instances of one model and set their primary keys, as bulk_create does,
    in batches the database accepts."""
    if not instances:
        return
    connection = _connection()
    model = type(instances[0])
    batch_size = connection.ops.bulk_batch_size(_insert(connection.vendor, model, 1)[1], instances)
    with _cursor() as cursor:
        for start in range(0, len(instances), batch_size):
            batch = instances[start : start + batch_size]
            sql, fields = _insert(connection.vendor, model, len(batch))
            cursor.execute(sql, _prepared(batch, fields, connection))
            for instance, (pk,) in zip(batch, cursor.fetchall(), strict=True):
                instance.pk = pk
    _stored(instances, connection)


@functools.lru_cache(maxsize=256)
def _insert_run_and_node_runs(vendor: str, rows: int) -> tuple[str, tuple[models.Field, ...], tuple[models.Field, ...]]:
    """PostgreSQL: a run and its node runs in one statement (a data-modifying CTE). Each
    VALUES column is cast to its field's type, which a NULL or a bare string literal lacks.
    A run has at most documents.MAX_NODES node runs: far below PostgreSQL's 65,535 parameters."""
    run_sql, run_fields = _insert(vendor, Run, 1)
    connection = _connection()
    run_column = _quote(NodeRun._meta.get_field("run").column)
    fields = tuple(f for f in NodeRun._meta.concrete_fields if not f.primary_key and f.name != "run")
    names = [f"c{index}" for index in range(len(fields))]
    casts = ", ".join(f"CAST(v.{name} AS {f.cast_db_type(connection)})" for name, f in zip(names, fields, strict=True))
    columns = ", ".join([run_column, *(_quote(f.column) for f in fields)])
    sql = (
        f"WITH new_run AS ({run_sql}) "
        f"INSERT INTO {_table(NodeRun)} ({columns}) SELECT new_run.id, {casts} "
        f"FROM new_run CROSS JOIN (VALUES {', '.join([_placeholders(fields)] * rows)}) AS v({', '.join(names)}) "
        f"RETURNING {run_column}, id, {_quote('node_key')}, {_quote('iteration')}"
    )
    return sql, run_fields, fields


def insert_run(run: Run, node_runs: list[NodeRun]) -> None:
    """Insert a new run and its node runs (as `insert` does), in one statement on PostgreSQL
    and in one transaction otherwise: starting a run is on the path of every run's latency."""
    connection = _connection()
    if connection.vendor != "postgresql" or not node_runs:  # (the CTE needs a node run to return the run's id)
        with transaction.atomic():
            insert([run])
            for row in node_runs:
                row.run = run  # the run's id, now that it has one
            insert(node_runs)
        return
    sql, run_fields, fields = _insert_run_and_node_runs(connection.vendor, len(node_runs))
    with _cursor() as cursor:
        cursor.execute(sql, _prepared([run], run_fields, connection) + _prepared(node_runs, fields, connection))
        returned = cursor.fetchall()
    # RETURNING's order is not promised: rows are matched by their unique key.
    ids = {(key, iteration): pk for _, pk, key, iteration in returned}
    run.pk = returned[0][0]
    for row in node_runs:
        row.run, row.pk = run, ids[(row.node_key, row.iteration)]
    _stored([run, *node_runs], connection)


# --- claiming a node run ---------------------------------------------------------------


#: A node run readied by another machine may look slightly in the future to this one (clock
#: skew), and Celery may deliver a delayed message a little early: only a message more than
#: this ahead of the node run's `ready_at` (a retry's backoff) is refused as early.
CLAIM_EARLY_TOLERANCE = timedelta(seconds=1)


@functools.cache
def _claim(vendor: str) -> tuple[str, _Reader]:
    """Parameters: running, started_at, heartbeat_at, worker, node-run id, ready, due, cancelled, cancelled."""
    reader = _Reader.of(NodeRun, list(NodeRun._meta.concrete_fields))
    node_run, run = _table(NodeRun), _table(Run)
    run_column = _quote(NodeRun._meta.get_field("run").column)
    ready_at = _quote(NodeRun._meta.get_field("ready_at").column)
    worker = _quote(NodeRun._meta.get_field("worker").column)
    parent = _quote(Run._meta.get_field("parent_node_run").column)
    sql = (
        f"UPDATE {node_run} SET state = %s, started_at = %s, heartbeat_at = %s, {worker} = %s "
        f"WHERE id = %s AND state = %s AND ({ready_at} IS NULL OR {ready_at} <= %s) AND NOT EXISTS ("
        f"SELECT 1 FROM {run} r LEFT JOIN {node_run} p ON p.id = r.{parent} "
        f"WHERE r.id = {node_run}.{run_column} AND (r.state = %s OR p.state = %s)) "
        f"RETURNING {reader.columns()}"
    )
    return sql, reader


def claim_node_run(node_run_id: int, now, worker: str) -> NodeRun | None:
    """`ready → running`, returning the row in the same statement; None if it was not ready,
    if it is not due yet (a retry's backoff), or if its run, or the Sub-pipeline node run that
    started its run, was cancelled (rows written just after a cancel read what it had to
    cancel). runtime.after_refused_claim handles all but the first."""
    connection = _connection()
    sql, reader = _claim(connection.vendor)
    stamp = connection.ops.adapt_datetimefield_value(now)
    due = connection.ops.adapt_datetimefield_value(now + CLAIM_EARLY_TOLERANCE)
    params = [
        *(NodeState.RUNNING, stamp, stamp, worker, node_run_id, NodeState.READY, due),
        *(RunState.CANCELLED, NodeState.CANCELLED),
    ]
    with _cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else reader.instance(row)


# --- moving a node run -----------------------------------------------------------------


@functools.cache
def _node_run_update(vendor: str, names: tuple[str, ...], leaving: int) -> tuple[str, tuple[models.Field, ...]]:
    fields = tuple(NodeRun._meta.get_field(name) for name in names)
    assignments = ", ".join(f"{_quote(model_field.column)} = %s" for model_field in fields)
    states = ", ".join(["%s"] * leaving)
    sql = f"UPDATE {_table(NodeRun)} SET {assignments} WHERE id = %s AND attempt = %s AND state IN ({states})"
    return sql, fields


def update_node_run(node_run_id: int, attempt: int, leaving: list[str], changes: dict[str, Any]) -> bool:
    """Set `changes` (field name: plain value) on the node run if it is still on `attempt` in
    one of the `leaving` states. Returns whether it was."""
    connection = _connection()
    sql, fields = _node_run_update(connection.vendor, tuple(changes), len(leaving))
    values = _node_run_update_params(connection, fields, changes)
    with _cursor() as cursor:
        cursor.execute(sql, [*values, node_run_id, attempt, *leaving])
        return cursor.rowcount > 0


def _node_run_update_params(connection, fields: tuple[models.Field, ...], changes: dict[str, Any]) -> list[Any]:
    return [
        model_field.get_db_prep_save(value, connection)
        for model_field, value in zip(fields, changes.values(), strict=True)
    ]


@functools.lru_cache(maxsize=256)
def _scope_states(vendor: str, keys: int) -> tuple[str, _Reader]:
    reader = _Reader.of(
        NodeRun, [NodeRun._meta.get_field(name) for name in ("node_key", "state", "handles", "id", "attempt")]
    )
    column = {name: _quote(NodeRun._meta.get_field(name).column) for name in ("run", "iteration", "node_key")}
    sql = (
        f"SELECT {reader.columns()} FROM {_table(NodeRun)} WHERE {column['run']} = %s "
        f"AND {column['iteration']} = %s AND {column['node_key']} IN ({', '.join(['%s'] * keys)})"
    )
    return sql, reader


def scope_states(run_id: int, iteration: str, keys: set[str]) -> dict[str, tuple[str, Any, int, int]]:
    """(state, handles, id, attempt) of the named node runs of one scope, by node key."""
    connection = _connection()
    sql, reader = _scope_states(connection.vendor, len(keys))
    with _cursor() as cursor:
        cursor.execute(sql, [run_id, iteration, *sorted(keys)])
        rows = cursor.fetchall()
    found = {}
    for row in rows:
        key, *values = reader.values(row, connection)
        found[key] = tuple(values)
    return found


# --- finishing a run -------------------------------------------------------------------

#: `handles` as a JSONField stores it on both databases (json.dumps, no spaces). Compared as
#: a literal, jsonb on PostgreSQL and text on SQLite both match it.
_ROUTED_TO_ERROR = "'[\"error\"]'"


@functools.cache
def _succeed_run(vendor: str, excluding: bool) -> str:
    """`running → succeeded` if no top-level node run (but the excluded one) is unfinished
    or failed unhandled. Parameters: state, finished_at, run id, running, run id[, excluded
    node-run id], unfinished states..., failed."""
    node_run = _table(NodeRun)
    column = {
        name: _quote(NodeRun._meta.get_field(name).column) for name in ("id", "run", "iteration", "state", "handles")
    }
    unfinished = ", ".join(["%s"] * len(NodeState.UNFINISHED))
    other = f"{column['id']} <> %s AND " if excluding else ""
    return (
        f"UPDATE {_table(Run)} SET state = %s, error = '', finished_at = %s "
        f"WHERE id = %s AND state = %s AND NOT EXISTS ("
        f"SELECT 1 FROM {node_run} WHERE {column['run']} = %s AND {column['iteration']} = '' AND {other}("
        f"{column['state']} IN ({unfinished}) OR ({column['state']} = %s AND "
        f"({column['handles']} IS NULL OR {column['handles']} <> {_ROUTED_TO_ERROR}))))"
    )


def _succeed_run_params(connection, run_id: int, now, excluding: int | None = None) -> list[Any]:
    other = [] if excluding is None else [excluding]
    stamp = connection.ops.adapt_datetimefield_value(now)
    unfinished = sorted(NodeState.UNFINISHED)
    return [RunState.SUCCEEDED, stamp, run_id, RunState.RUNNING, run_id, *other, *unfinished, NodeState.FAILED]


def succeed_run_if_all_done(run_id: int, now) -> bool:
    """`running → succeeded` if no top-level node run is unfinished and no failure went
    unhandled (not routed to an `error` handle). Returns whether the run succeeded here."""
    connection = _connection()
    with _cursor() as cursor:
        cursor.execute(_succeed_run(connection.vendor, False), _succeed_run_params(connection, run_id, now))
        return cursor.rowcount > 0


@functools.cache
def _end_node_and_run(vendor: str, names: tuple[str, ...], leaving: int) -> tuple[str, tuple[models.Field, ...]]:
    """PostgreSQL: both moves in one statement (data-modifying CTEs). The run's condition
    reads the snapshot the statement started from, in which the node run still has its old
    state: so it leaves that node run out."""
    node_update, fields = _node_run_update(vendor, names, leaving)
    succeed_run = _succeed_run(vendor, True)
    sql = (
        f"WITH moved AS ({node_update} RETURNING id), "
        f"ended AS ({succeed_run} AND EXISTS (SELECT 1 FROM moved) RETURNING id) "
        f"SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM ended)"
    )
    return sql, fields


def end_node_and_run(
    node_run_id: int, attempt: int, leaving: list[str], changes: dict[str, Any], run_id: int, now
) -> tuple[bool, bool]:
    """`update_node_run`, then, if the node run moved, `succeed_run_if_all_done` of its run,
    in one statement on PostgreSQL and one transaction on SQLite. Returns (node run moved,
    run succeeded). For a node run that may be its run's last: the common ending costs one
    round trip and one commit instead of two.

    Two node runs of a run ending at once on PostgreSQL may each see the other unfinished,
    and neither end the run: the caller checks the run again after this committed."""
    connection = _connection()
    if connection.vendor != "postgresql":
        # SQLite writes one transaction at a time, so the run's check sees every other end.
        with transaction.atomic():
            moved = update_node_run(node_run_id, attempt, leaving, changes)
            return moved, moved and succeed_run_if_all_done(run_id, now)
    sql, fields = _end_node_and_run(connection.vendor, tuple(changes), len(leaving))
    params = [*_node_run_update_params(connection, fields, changes), node_run_id, attempt, *leaving]
    params += _succeed_run_params(connection, run_id, now, excluding=node_run_id)
    with _cursor() as cursor:
        cursor.execute(sql, params)
        moved, ended = cursor.fetchone()
    return moved > 0, ended > 0


# --- reading a run ---------------------------------------------------------------------


@functools.cache
def _run_with_pipeline(vendor: str) -> tuple[str, _Reader, _Reader]:
    run = _Reader.of(Run, [f for f in Run._meta.concrete_fields if f.name != "spec"])
    pipeline = _Reader.of(Pipeline, list(Pipeline._meta.concrete_fields))
    pipeline_column = _quote(Run._meta.get_field("pipeline").column)
    sql = (
        f"SELECT {run.columns('r')}, {pipeline.columns('p')} FROM {_table(Run)} r "
        f"JOIN {_table(Pipeline)} p ON p.{_quote('id')} = r.{pipeline_column} WHERE r.{_quote('id')} = %s"
    )
    return sql, run, pipeline


def read_run(run_id: int) -> Run:
    """A run with its pipeline (the spec deferred), as `select_related("pipeline")` reads it.
    Raises Run.DoesNotExist."""
    connection = _connection()
    sql, run_reader, pipeline_reader = _run_with_pipeline(connection.vendor)
    with _cursor() as cursor:
        cursor.execute(sql, [run_id])
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"no run {run_id}")
    split = len(run_reader.fields)
    run = run_reader.instance(row[:split])
    run.pipeline = pipeline_reader.instance(row[split:])
    return run
