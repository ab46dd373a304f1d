"""Streaming writers: a stored record set in, chunks of a JSONL, CSV, Parquet or Label Studio file out.

Each exporter is a generator of bytes that reads the parts batch by batch, so a
StreamingHttpResponse can send a dataset of any size with bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
import csv
import io
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from datasets import records
from datasets.errors import DatasetError

EXPORT_FORMATS = ("jsonl", "csv", "parquet", "label_studio")
#: How pages name each format.
FORMAT_LABELS = {"jsonl": "JSONL", "csv": "CSV", "parquet": "Parquet", "label_studio": "Label Studio"}
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "label_studio": "application/json",
}
#: File name extensions where they differ from the format's name.
FILE_EXTENSIONS = {"label_studio": "json"}
#: Options of the Label Studio export (query parameters of the export API), with defaults.
LABEL_STUDIO_OPTIONS = {"label_field": "label", "text_field": "text", "label_as": "predictions", "score_field": None}
#: Records per Parquet row group (and per CSV write).
EXPORT_BATCH = 10_000


def export(manifest: dict[str, Any], fmt: str, options: dict[str, Any] | None = None) -> Iterator[bytes]:
    """The file's chunks. Only the Label Studio format takes options; they are checked here,
    before the first chunk, so a bad one is a 400 and not a broken download."""
    if fmt == "label_studio":
        return export_label_studio(manifest, **(options or {}))
    if options:
        raise DatasetError(next(iter(options)), f"is an option of format label_studio, not {fmt}")
    return {"jsonl": export_jsonl, "csv": export_csv, "parquet": export_parquet}[fmt](manifest)


def export_jsonl(manifest: dict[str, Any]) -> Iterator[bytes]:
    """The stored parts, byte for byte."""
    return records.iter_raw(manifest)


def _field_names(manifest: dict[str, Any]) -> list[str]:
    return [field["name"] for field in manifest.get("fields", [])]


def _csv_value(value: Any) -> str:
    """Strings as they are; null as an empty cell; anything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def export_csv(manifest: dict[str, Any]) -> Iterator[bytes]:
    """A header of every field (first-seen order), then a row per record."""
    columns = _field_names(manifest)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for batch in records.iter_records(manifest, EXPORT_BATCH):
        writer.writerows([_csv_value(record.get(column)) for column in columns] for record in batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _arrow_type(types: list[str]) -> tuple[pa.DataType | None, bool]:
    """The Arrow type of a field from its JSON types, and whether values go in as JSON text.

    None means "nested: infer it from the values" (see `_nested_types`). Mixed fields are
    written as JSON strings: one schema must hold for the whole file.
    """
    kinds = set(types) - {"null"}
    if not kinds or kinds == {"string"}:
        return pa.string(), False
    if kinds == {"integer"}:
        return pa.int64(), False
    if kinds <= {"integer", "number"}:
        return pa.float64(), False
    if kinds == {"boolean"}:
        return pa.bool_(), False
    if kinds in ({"object"}, {"array"}):
        return None, False
    return pa.string(), True


def _writable(arrow_type: pa.DataType) -> bool:
    """Parquet cannot store a struct without fields (what `{}` infers to)."""
    if pa.types.is_struct(arrow_type):
        return arrow_type.num_fields > 0 and all(_writable(field.type) for field in arrow_type)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _writable(arrow_type.value_type)
    return True


def _nested_types(manifest: dict[str, Any], names: list[str]) -> dict[str, pa.DataType | None]:
    """One pass over the nested fields: each batch's inferred type, unified across batches
    (a struct gains the keys seen in any record, so a key a record lacks reads back as
    null: Parquet has one schema per file). None where no single type fits."""
    found: dict[str, pa.DataType | None] = dict.fromkeys(names)
    failed: set[str] = set()
    for batch in records.iter_records(manifest, EXPORT_BATCH, fields=names):
        for name in names:
            if name in failed:
                continue
            try:
                inferred = pa.array([record.get(name) for record in batch]).type
                if found[name] is not None:
                    inferred = (
                        pa.unify_schemas(
                            [pa.schema([(name, found[name])]), pa.schema([(name, inferred)])],
                            promote_options="permissive",
                        )
                        .field(name)
                        .type
                    )
                found[name] = inferred
            except (pa.ArrowException, TypeError, ValueError):
                failed.add(name)
    return {
        name: arrow_type if name not in failed and arrow_type is not None and _writable(arrow_type) else None
        for name, arrow_type in found.items()
    }


class _Sink(io.RawIOBase):
    """A write-only file that keeps what ParquetWriter wrote until the generator takes it."""

    def __init__(self):
        super().__init__()
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def export_parquet(manifest: dict[str, Any]) -> Iterator[bytes]:
    fields = manifest.get("fields", [])
    plan = [(field["name"], *_arrow_type(field["types"])) for field in fields]
    nested = [name for name, arrow_type, _ in plan if arrow_type is None]
    if nested:
        inferred = _nested_types(manifest, nested)
        plan = [
            (name, inferred[name] or pa.string(), inferred[name] is None)
            if arrow_type is None
            else (name, arrow_type, as_json)
            for name, arrow_type, as_json in plan
        ]
    schema = pa.schema([(name, arrow_type) for name, arrow_type, _ in plan])
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema)
    try:
        for batch in records.iter_records(manifest, EXPORT_BATCH):
            columns = []
            for name, arrow_type, as_json in plan:
                values = [record.get(name) for record in batch]
                if as_json:
                    values = [_csv_value(value) if value is not None else None for value in values]
                elif pa.types.is_floating(arrow_type):
                    values = [float(value) if value is not None else None for value in values]
                columns.append(pa.array(values, type=arrow_type))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=EXPORT_BATCH)
            if chunk := sink.take():
                yield chunk
    finally:
        writer.close()
    if chunk := sink.take():
        yield chunk


def export_label_studio(
    manifest: dict[str, Any],
    *,
    label_field: str = "label",
    text_field: str = "text",
    label_as: str = "predictions",
    score_field: str | None = None,
) -> Iterator[bytes]:
    """Label Studio JSON tasks for human review, one per record: `data` is the record without
    its label; a label (a string, or a list for several) becomes a choices result
    (`from_name` = label_field, `to_name` = text_field) among the task's `predictions` (to
    review; with the record's `score_field` as the prediction's score) or `annotations`.
    Records without a label get a task without one. The matching labeling config:
    <Choices name="{label_field}" toName="{text_field}"> over <Text name="{text_field}" value="${text_field}"/>."""
    for option, value in (("label_field", label_field), ("text_field", text_field)):
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(option, "must be a field name")
    if label_as not in ("predictions", "annotations"):
        raise DatasetError("label_as", "must be predictions or annotations")
    if score_field is not None and (not isinstance(score_field, str) or not score_field.strip()):
        raise DatasetError("score_field", "must be a field name")

    def task(record: dict[str, Any]) -> dict[str, Any]:
        label = record.get(label_field)
        if label is None:
            choices = []
        else:
            choices = [_choice(item) for item in label] if isinstance(label, list) else [_choice(label)]
        data = {"data": {name: value for name, value in record.items() if name != label_field}}
        if not choices:
            return data
        result = {"from_name": label_field, "to_name": text_field, "type": "choices", "value": {"choices": choices}}
        entry: dict[str, Any] = {"result": [result]}
        if label_as == "predictions":
            entry["model_version"] = "datamate"
            score = record.get(score_field) if score_field else None
            if isinstance(score, int | float) and not isinstance(score, bool):
                entry["score"] = score
        return {**data, label_as: [entry]}

    return _json_array(manifest, task)


def _json_array(manifest: dict[str, Any], convert) -> Iterator[bytes]:
    """A JSON array of `convert(record)`, one element per line, a batch per chunk."""
    yield b"["
    separator = b"\n"
    for batch in records.iter_records(manifest, EXPORT_BATCH):
        chunk = bytearray()
        for record in batch:
            chunk += separator + orjson.dumps(convert(record))
            separator = b",\n"
        yield bytes(chunk)
    yield b"\n]\n"


def _choice(value: Any) -> str:
    return value if isinstance(value, str) else _csv_value(value)
