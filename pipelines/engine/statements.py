"""The engine's hottest statements, as SQL written once per process.

Django compiles a queryset anew on every call. On the engine's path, a few statements per
node, that cost more than the database itself: the run's final UPDATE took 1.5 ms through
the ORM against 0.15 ms as text on PostgreSQL (0.8 ms against 0.02 ms on SQLite). So these
statements are spelled out here, from the models' own table and column names, and their
values go through the models' own fields both ways, so they read and write exactly what the
ORM would. Both SQLite (3.35+) and PostgreSQL support every form used (RETURNING included).
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
from typing import Any

from django.db import connections, models

from pipelines.engine.states import NodeState, RunState
from pipelines.models import NodeRun, Pipeline, Run


def _connection():
    return connections["default"]


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


# --- claiming a node run ---------------------------------------------------------------


@functools.cache
def _claim(vendor: str) -> tuple[str, _Reader]:
    reader = _Reader.of(NodeRun, list(NodeRun._meta.concrete_fields))
    sql = (
        f"UPDATE {_table(NodeRun)} SET state = %s, started_at = %s, heartbeat_at = %s "
        f"WHERE id = %s AND state = %s RETURNING {reader.columns()}"
    )
    return sql, reader


def claim_node_run(node_run_id: int, now) -> NodeRun | None:
    """`ready → running`, returning the row in the same statement; None if it was not ready."""
    connection = _connection()
    sql, reader = _claim(connection.vendor)
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, [NodeState.RUNNING, stamp, stamp, node_run_id, NodeState.READY])
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
    values = [
        model_field.get_db_prep_save(value, connection)
        for model_field, value in zip(fields, changes.values(), strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, node_run_id, attempt, *leaving])
        return cursor.rowcount > 0


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
    with connection.cursor() as cursor:
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
def _succeed_run(vendor: str) -> str:
    node_run = _table(NodeRun)
    column = {name: _quote(NodeRun._meta.get_field(name).column) for name in ("run", "iteration", "state", "handles")}
    unfinished = ", ".join(["%s"] * len(NodeState.UNFINISHED))
    return (
        f"UPDATE {_table(Run)} SET state = %s, error = '', finished_at = %s "
        f"WHERE id = %s AND state = %s AND NOT EXISTS ("
        f"SELECT 1 FROM {node_run} WHERE {column['run']} = %s AND {column['iteration']} = '' AND ("
        f"{column['state']} IN ({unfinished}) OR ({column['state']} = %s AND "
        f"({column['handles']} IS NULL OR {column['handles']} <> {_ROUTED_TO_ERROR}))))"
    )


def succeed_run_if_all_done(run_id: int, now) -> bool:
    """`running → succeeded` if no top-level node run is unfinished and no failure went
    unhandled (not routed to an `error` handle). Returns whether the run succeeded here."""
    connection = _connection()
    params = [
        RunState.SUCCEEDED,
        connection.ops.adapt_datetimefield_value(now),
        run_id,
        RunState.RUNNING,
        run_id,
        *sorted(NodeState.UNFINISHED),
        NodeState.FAILED,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_succeed_run(connection.vendor), params)
        return cursor.rowcount > 0


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
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_id])
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"no run {run_id}")
    split = len(run_reader.fields)
    run = run_reader.instance(row[:split])
    run.pipeline = pipeline_reader.instance(row[split:])
    return run
