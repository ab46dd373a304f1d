"""Streaming readers: a source file (or folder) in, batches of records out.

Every reader holds at most one batch (plus one line, CSV row, JSON array element or
Parquet batch) in memory, so the size of the file does not matter. Bad input raises
`DatasetImportError` naming the file and the line. Server paths go through
`resolve_server_path`, which only admits paths inside DATAMATE_IMPORT_ROOTS.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
import csv
import json
import os
from pathlib import Path
import re
from typing import Any, BinaryIO

from django.conf import settings
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from datasets.errors import DatasetError, DatasetImportError
from datasets.records import json_type

Batches = Iterator[list[dict[str, Any]]]

FORMATS = ("jsonl", "json", "csv", "parquet", "folder", "label_studio")
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Files a folder import turns into records (one per file: its path and its text).
TEXT_EXTENSIONS = (".txt", ".md", ".markdown", ".html", ".htm")
BATCH_SIZE = 1000
#: A single JSON array element larger than this is refused instead of filling memory.
MAX_JSON_ELEMENT_BYTES = 256 * 1024 * 1024
#: CSV fields hold documents: allow large ones (the csv module's default is 128 KiB).
CSV_FIELD_LIMIT = 256 * 1024 * 1024
_CHUNK = 1024 * 1024
_BOM = codecs.BOM_UTF8


def guess_format(filename: str, *, is_dir: bool = False, field: str = "format") -> str:
    if is_dir:
        return "folder"
    fmt = EXTENSIONS.get(Path(filename).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise DatasetError(field, f"cannot tell the format of {filename!r} from its name ({known}); pass `format`")
    return fmt


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DatasetError("format", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


# -- server paths --------------------------------------------------------------------
def import_roots() -> list[Path]:
    return [Path(root).resolve() for root in settings.DATAMATE_IMPORT_ROOTS]


def resolve_server_path(raw: str) -> tuple[Path, Path]:
    """(real path, the import root that holds it) for a path a user asked to import.

    Relative paths are looked up in each root in turn. `..` is refused outright, and the
    real path (symlinks resolved) must lie inside a root.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise DatasetError("path", "give the path of a file or folder inside an import root")
    if "\x00" in raw:  # the OS would refuse it with a ValueError, not a message
        raise DatasetError("path", f"{raw!r}: a NUL byte is not allowed in import paths")
    candidate = Path(raw.strip())
    if ".." in candidate.parts:
        raise DatasetError("path", f"{raw}: '..' is not allowed in import paths")
    roots = import_roots()
    if not roots:
        raise DatasetError("path", "importing from server paths is disabled (DATAMATE_IMPORT_ROOTS is empty)")
    targets = [candidate] if candidate.is_absolute() else [root / candidate for root in roots]
    for target in targets:
        real = target.resolve()
        root = next((root for root in roots if real.is_relative_to(root)), None)
        if root is None:
            raise DatasetError("path", f"{raw}: is outside the import roots (DATAMATE_IMPORT_ROOTS)")
        if real.exists():
            return real, root
    raise DatasetError("path", f"{raw}: no such file or folder in the import roots")


# -- readers -------------------------------------------------------------------------
def read_records(source: BinaryIO | Path, name: str, fmt: str, *, root: Path | None = None) -> Batches:
    """Batches of records from `source` (an open binary file, or a folder for `folder`).

    `name` is what error messages call the source; `root` bounds a folder walk.
    """
    if fmt == "folder":
        if not isinstance(source, Path) or not source.is_dir():
            raise DatasetError("format", "the folder format reads a folder given as `path`")
        return read_folder(source, name, root=root or source)
    if isinstance(source, Path) and source.is_dir():
        raise DatasetError("format", f"{name} is a folder; import it with format 'folder'")
    readers = {
        "jsonl": read_jsonl,
        "json": read_json_array,
        "csv": read_csv,
        "parquet": read_parquet,
        "label_studio": read_label_studio,
    }
    return readers[check_format(fmt)](source, name)


def _utf8_problem(data: bytes, error: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{data[error.start]:02x} at column {error.start + 1})"


def _opened(source: BinaryIO | Path):
    return source.open("rb") if isinstance(source, Path) else _Unclosed(source)


class _Unclosed:
    """A caller's open file used in a `with` block without closing it."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle

    def __enter__(self) -> BinaryIO:
        return self.handle

    def __exit__(self, *exc) -> None:
        pass


def read_jsonl(source: BinaryIO | Path, name: str) -> Batches:
    batch: list[dict[str, Any]] = []
    with _opened(source) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as bad_bytes:
                    raise DatasetImportError(name, number, _utf8_problem(raw, bad_bytes)) from None
                raise DatasetImportError(name, number, f"not valid JSON: {error.msg} (column {error.colno})") from None
            if not isinstance(record, dict):
                raise DatasetImportError(name, number, f"a record must be a JSON object, not {json_type(record)}")
            batch.append(record)
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
    if batch:
        yield batch


_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _JsonArrayStream:
    """A JSON array read element by element from a binary stream.

    The text buffer holds the unread rest of the current chunk(s); a consumed prefix is
    dropped as parsing moves on, and `base_line` remembers how many lines it held, so
    errors still name the right line.
    """

    def __init__(self, handle: BinaryIO, name: str):
        self.handle = handle
        self.name = name
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.json = json.JSONDecoder()
        self.buffer = ""
        self.pos = 0
        self.base_line = 1
        self.raw_lines = 1
        self.eof = False
        self.first = True

    def line_at(self, pos: int) -> int:
        return self.base_line + self.buffer.count("\n", 0, pos)

    def fail(self, pos: int, message: str):
        raise DatasetImportError(self.name, self.line_at(pos), message)

    def more(self, at_least: int = _CHUNK) -> bool:
        """Read at least `at_least` more bytes (or to the end); False at the end."""
        if self.eof:
            return False
        if self.pos > _CHUNK:  # drop what is parsed
            self.base_line += self.buffer.count("\n", 0, self.pos)
            self.buffer = self.buffer[self.pos :]
            self.pos = 0
        added = 0
        while added < at_least:
            chunk = self.handle.read(_CHUNK)
            if self.first and chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
            self.first = False
            try:
                text = self.decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                line = self.raw_lines + error.object[: error.start].count(b"\n")
                raise DatasetImportError(self.name, line, _utf8_problem(error.object, error)) from None
            self.raw_lines += chunk.count(b"\n")
            self.buffer += text
            added += len(chunk)
            if not chunk:
                self.eof = True
                break
        return added > 0 or bool(text)

    def skip_whitespace(self) -> bool:
        """Move to the next non-blank character; False if the input ends first."""
        while True:
            self.pos = _WHITESPACE.match(self.buffer, self.pos).end()
            if self.pos < len(self.buffer):
                return True
            if not self.more():
                return False

    def element(self) -> Any:
        while True:
            try:
                value, end = self.json.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as error:
                truncated = error.pos >= len(self.buffer) - 1 or error.msg.startswith("Unterminated string")
                if self.eof or not truncated:
                    self.fail(error.pos, f"not valid JSON: {error.msg}")
            else:
                if end < len(self.buffer) or self.eof:  # a number at the buffer's end may go on
                    start, self.pos = self.pos, end
                    return value, start
            pending = len(self.buffer) - self.pos
            if pending > MAX_JSON_ELEMENT_BYTES:
                self.fail(self.pos, f"an array element is larger than {MAX_JSON_ELEMENT_BYTES} bytes")
            self.more(at_least=max(_CHUNK, pending))

    def elements(self) -> Iterator[tuple[Any, int]]:
        """Each element of the array, with the line it starts on."""
        if not self.skip_whitespace():
            raise DatasetImportError(self.name, 1, "the file is empty: expected a JSON array")
        if self.buffer[self.pos] != "[":
            self.fail(self.pos, "expected a JSON array of objects ('[')")
        self.pos += 1
        if not self.skip_whitespace():
            self.fail(self.pos, "the array is not closed (missing ']')")
        if self.buffer[self.pos] == "]":
            self.pos += 1
        else:
            while True:
                value, start = self.element()
                yield value, self.line_at(start)
                if not self.skip_whitespace():
                    self.fail(self.pos, "the array is not closed (missing ']')")
                char = self.buffer[self.pos]
                self.pos += 1
                if char == "]":
                    break
                if char != ",":
                    self.fail(self.pos - 1, f"expected ',' or ']' after an array element, found {char!r}")
                if not self.skip_whitespace():
                    self.fail(self.pos, "the array is not closed (missing ']')")
        if self.skip_whitespace():
            self.fail(self.pos, "unexpected data after the end of the array")

    def records(self) -> Batches:
        batch: list[dict[str, Any]] = []
        for value, line in self.elements():
            if not isinstance(value, dict):
                raise DatasetImportError(self.name, line, f"a record must be a JSON object, not {json_type(value)}")
            batch.append(value)
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
        if batch:
            yield batch


def read_json_array(source: BinaryIO | Path, name: str) -> Batches:
    with _opened(source) as handle:
        yield from _JsonArrayStream(handle, name).records()


def read_label_studio(source: BinaryIO | Path, name: str) -> Batches:
    """A Label Studio JSON export (an array of tasks) after human review: one record per task,
    its `data` plus, from its chosen annotation, each choices result as `from_name: choice`
    (a list when several are chosen). The chosen annotation is the ground-truth one, else the
    last that was not cancelled (skipped); a task without one keeps only its data."""
    batch: list[dict[str, Any]] = []
    with _opened(source) as handle:
        for number, (task, line) in enumerate(_JsonArrayStream(handle, name).elements(), start=1):
            try:
                batch.append(label_studio_record(task))
            except ValueError as error:
                task_id = task.get("id") if isinstance(task, dict) else None
                which = f"task {number}" + (f" (id {task_id})" if task_id is not None else "")
                raise DatasetImportError(name, line, f"{which}: {error}") from None
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
    if batch:
        yield batch


def label_studio_record(task: Any) -> dict[str, Any]:
    """The record of one Label Studio task (see `read_label_studio`); ValueError says what is wrong."""
    if not isinstance(task, dict):
        raise ValueError(f"a task must be a JSON object, not {json_type(task)}")
    data = task.get("data")
    if not isinstance(data, dict):
        raise ValueError('has no "data" object')
    # Label Studio before 1.0 called annotations "completions".
    annotations = task.get("annotations", task.get("completions"))
    if annotations is None:
        annotations = []
    if not isinstance(annotations, list) or not all(isinstance(item, dict) for item in annotations):
        raise ValueError('"annotations" must be a list of objects')
    submitted = [item for item in annotations if not item.get("was_cancelled")]
    chosen = next((item for item in reversed(submitted) if item.get("ground_truth")), None)
    if chosen is None and submitted:
        chosen = submitted[-1]
    record = dict(data)
    if chosen is None:
        return record
    results = chosen.get("result") or []
    if not isinstance(results, list):
        raise ValueError('the annotation\'s "result" must be a list')
    for index, result in enumerate(results, start=1):
        if not isinstance(result, dict):
            raise ValueError(f"annotation result {index} must be a JSON object")
        if result.get("type") != "choices":
            continue  # other result types (spans, text areas, ratings) are not labels of the record
        from_name = result.get("from_name")
        value = result.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(from_name, str) or not from_name:
            raise ValueError(f'annotation result {index} has no "from_name"')
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"the choices of {from_name!r} must be a non-empty list of strings")
        record[from_name] = choices[0] if len(choices) == 1 else choices
    return record


def _utf8_lines(handle: BinaryIO, name: str, position: list[int]) -> Iterator[str]:
    """Decoded lines (with their endings); `position[0]` is the number of the last one."""
    for number, raw in enumerate(handle, start=1):
        position[0] = number
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DatasetImportError(name, number, _utf8_problem(raw, error)) from None


def read_csv(source: BinaryIO | Path, name: str) -> Batches:
    """A header row, then one record per row; every value is a string."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    position = [0]
    with _opened(source) as handle:
        reader = csv.reader(_utf8_lines(handle, name, position))
        try:
            header = next(reader, None)
            if header is None:
                raise DatasetImportError(name, 1, "the file is empty: expected a header row")
            for index, column in enumerate(header):
                if not column.strip():
                    raise DatasetImportError(name, 1, f"column {index + 1} of the header has no name")
                if column in header[:index]:
                    raise DatasetImportError(name, 1, f"column {column!r} appears twice in the header")
            batch: list[dict[str, Any]] = []
            row_start = position[0] + 1
            for row in reader:
                if row:
                    if len(row) < len(header):
                        missing = ", ".join(repr(column) for column in header[len(row) :])
                        raise DatasetImportError(
                            name, row_start, f"the row has {len(row)} of {len(header)} columns: missing {missing}"
                        )
                    if len(row) > len(header):
                        raise DatasetImportError(
                            name, row_start, f"the row has {len(row)} columns but the header has {len(header)}"
                        )
                    batch.append(dict(zip(header, row, strict=True)))
                    if len(batch) >= BATCH_SIZE:
                        yield batch
                        batch = []
                row_start = position[0] + 1
        except csv.Error as error:
            raise DatasetImportError(name, position[0], f"not valid CSV: {error}") from None
    if batch:
        yield batch


def read_parquet(source: BinaryIO | Path, name: str) -> Batches:
    try:
        parquet = pq.ParquetFile(str(source) if isinstance(source, Path) else source)
    except (pa.ArrowException, OSError) as error:
        raise DatasetImportError(name, None, f"not a readable Parquet file: {error}") from None
    batches = parquet.iter_batches(batch_size=BATCH_SIZE)
    row = 1
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                break
            records = batch.to_pylist()
        except (pa.ArrowException, OSError) as error:
            raise DatasetImportError(name, None, f"cannot read the Parquet rows from row {row} on: {error}") from None
        row += len(records)
        yield records


def read_folder(directory: Path, name: str, *, root: Path) -> Batches:
    """One record per text file under `directory`: {"path": relative path, "text": content}.

    Symlinked folders are not followed; a symlinked file must point inside `root`.
    """
    batch: list[dict[str, Any]] = []
    found = False
    for current, folders, files in os.walk(directory, followlinks=False):
        folders.sort()
        for filename in sorted(files):
            if not filename.lower().endswith(TEXT_EXTENSIONS):
                continue
            path = Path(current) / filename
            relative = path.relative_to(directory).as_posix()
            shown = f"{name.rstrip('/')}/{relative}"
            real = path.resolve()
            if not real.is_relative_to(root):
                raise DatasetError("path", f"{shown}: links to a file outside the import roots")
            if not real.is_file():
                continue
            found = True
            data = real.read_bytes()
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                line = data[: error.start].count(b"\n") + 1
                column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
                raise DatasetImportError(
                    shown, line, f"not valid UTF-8 (byte 0x{data[error.start]:02x} at column {column})"
                ) from None
            batch.append({"path": relative, "text": text})
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
    if not found:
        raise DatasetImportError(name, None, f"the folder has no {', '.join(TEXT_EXTENSIONS)} files")
    if batch:
        yield batch
