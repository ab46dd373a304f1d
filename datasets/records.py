"""The record store: JSON Lines parts in Django storage, described by a manifest.

One store serves dataset versions and the artifacts that data nodes pass each other.
Records are JSON objects. A writer appends them in batches (serialized with orjson) to
a local spool file and ships each full part to storage (`default_storage`, so
FileSystemStorage under MEDIA_ROOT today and S3 tomorrow), keeping only the current
part's spool and a few counters in memory. `close()` returns the manifest:

    {
      "format": "jsonl",
      "prefix": "datasets/7/0d5c…",
      "parts": [{"name": "…/part-00000.jsonl", "count": 100000, "bytes": 5242880, "sha256": "…"}],
      "count": 123456,
      "bytes": 6291456,
      "checksum": "sha256:…",          # of all parts' bytes, in order
      "fields": [{"name": "text", "types": ["string"]}, {"name": "score", "types": ["null", "number"]}],
      "samples": [{…}, …]              # the first few records, long strings cut short
    }

Readers stream batches back (`iter_records`), slice a page without parsing the records
before it (`read_slice`), or copy the stored bytes verbatim (`iter_raw`). Messages
between processes carry the manifest (or the id of the row that holds it), never records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
import contextlib
import decimal
import hashlib
import io
import os
import tempfile
from typing import Any

from django.core.files import File
from django.core.files.storage import Storage, default_storage
import orjson

#: A part is shipped to storage when it holds this many records or bytes, whichever comes first.
DEFAULT_PART_RECORDS = 100_000
DEFAULT_PART_BYTES = 128 * 1024 * 1024
#: Records per batch handed to readers.
DEFAULT_BATCH_SIZE = 1000
#: The manifest keeps this many records as samples, with strings cut to SAMPLE_TEXT_CHARS.
SAMPLE_RECORDS = 5
SAMPLE_TEXT_CHARS = 500
#: A part stays in memory up to this size while it is written, then spills to a file.
_SPOOL_BYTES = 1024 * 1024
_RAW_CHUNK = 1024 * 1024
_DUMPS_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


class RecordStoreError(Exception):
    """A stored part is missing or unreadable (not bad user input: the store itself is damaged)."""


#: Exact Python types → JSON type (the fast path: one dict lookup per value).
_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    dict: "object",
    list: "array",
}


def json_type(value: Any) -> str:
    """The JSON type of a value as stored: null, boolean, integer, number, string, object, array."""
    return _JSON_TYPES.get(type(value)) or _class_json_type(type(value))


def _class_json_type(cls: type) -> str:
    if issubclass(cls, bool):
        return "boolean"
    if issubclass(cls, int):
        return "integer"
    if issubclass(cls, float):
        return "number"
    if issubclass(cls, dict):
        return "object"
    if issubclass(cls, list | tuple):
        return "array"
    return "string"  # str, and what orjson writes as a string (dates, decimals, bytes)


def _json_default(value: Any) -> Any:
    """What orjson cannot write natively (Parquet gives us decimals and bytes)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


def dumps_line(record: dict[str, Any]) -> bytes:
    """One record as one JSON line (with its newline)."""
    return orjson.dumps(record, default=_json_default, option=_DUMPS_OPTIONS)


def _sample(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value[:SAMPLE_TEXT_CHARS] + "…" if isinstance(value, str) and len(value) > SAMPLE_TEXT_CHARS else value
        for key, value in record.items()
    }


class _MovableFile(File):
    """A finished spool file that FileSystemStorage moves into place (os.rename, as it does
    with large uploads) instead of copying it."""

    def temporary_file_path(self) -> str:
        return self.file.name


class _Spool:
    """The part being written: in memory while small, then in a file. When the storage keeps
    files on a local disk, that file is made in the part's own directory, so saving the part
    is a rename, not a copy; otherwise it is an anonymous temp file that is copied."""

    def __init__(self, directory: str | None):
        self.directory = directory
        self.file: Any = io.BytesIO()
        self.path: str | None = None  # of a named spool file, until it is moved or deleted

    def write(self, data: bytes) -> None:
        self.file.write(data)
        if self.file.__class__ is io.BytesIO and self.file.tell() > _SPOOL_BYTES:
            self._spill()

    def _spill(self) -> None:
        if self.directory is None:
            spilled = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        else:
            os.makedirs(self.directory, exist_ok=True)
            spilled = tempfile.NamedTemporaryFile(dir=self.directory, prefix=".spool-", delete=False)  # noqa: SIM115
            self.path = spilled.name
        spilled.write(self.file.getbuffer())
        self.file = spilled

    def content(self, name: str) -> File:
        if self.path is not None:
            self.file.flush()
            return _MovableFile(self.file, name=name)
        self.file.seek(0)
        return File(self.file, name=name)

    def close(self) -> None:
        self.file.close()
        if self.path is not None:  # still there if the storage copied it or saving failed
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None


def _local_directory(storage: Storage, prefix: str) -> str | None:
    """Where the parts under `prefix` are on disk, for a storage with local paths whose
    directories are made with default permissions (else None: spool elsewhere and copy)."""
    if getattr(storage, "directory_permissions_mode", None) is not None:
        return None
    try:
        return storage.path(prefix)
    except NotImplementedError:
        return None


class RecordWriter:
    """Writes records as JSON Lines parts under `prefix` in storage.

    Use as a context manager, or call `close()` (returns the manifest) or `abort()`
    (deletes every part written so far) yourself. An exception inside the `with` block
    aborts, so a failed write leaves no files behind.
    """

    def __init__(
        self,
        prefix: str,
        *,
        part_records: int = DEFAULT_PART_RECORDS,
        part_bytes: int = DEFAULT_PART_BYTES,
        samples: int = SAMPLE_RECORDS,
        storage: Storage | None = None,
    ):
        if part_records < 1 or part_bytes < 1:
            raise ValueError("part_records and part_bytes must be positive")
        self.prefix = prefix.strip("/")
        self.storage = storage or default_storage
        self.part_records = part_records
        self.part_bytes = part_bytes
        self.sample_size = samples
        self.count = 0
        self.bytes = 0
        self.samples: list[dict[str, Any]] = []
        self.manifest: dict[str, Any] | None = None
        self._fields: dict[str, set[str]] = {}
        self._parts: list[dict[str, Any]] = []
        self._checksum = hashlib.sha256()
        self._spool: _Spool | None = None
        self._spool_directory = _local_directory(self.storage, self.prefix)
        self._part_hash = hashlib.sha256()
        self._part_count = 0
        self._part_size = 0
        self._finished = False

    # -- writing ------------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        self.write_batch((record,))

    def write_batch(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records; one spool write per batch (or per part boundary inside it)."""
        if self._finished:
            raise RecordStoreError("this writer is closed")
        records = records if isinstance(records, list) else list(records)
        lines: list[bytes] = []
        try:
            for record in records:
                if not isinstance(record, dict):
                    raise TypeError(f"a record must be a JSON object, not {json_type(record)}")
                lines.append(dumps_line(record))
        except TypeError:  # orjson.JSONEncodeError too
            self.count += len(lines)  # so the bad record is number count + 1, as callers report it
            raise
        self._track(records)
        start = 0
        for end, line in enumerate(lines, start=1):
            self._part_count += 1
            self._part_size += len(line)
            if self._part_count >= self.part_records or self._part_size >= self.part_bytes:
                self._spool_write(lines[start:end])
                start = end
                self._ship_part()
        if start < len(lines):
            self._spool_write(lines[start:] if start else lines)

    def _track(self, records: list[dict[str, Any]]) -> None:
        self.count += len(records)
        # A value's JSON type depends on its class only: each (field, class) is looked up once,
        # in the order the fields first appear.
        fields = self._fields
        for key, cls in dict.fromkeys((key, type(value)) for record in records for key, value in record.items()):
            kind = _JSON_TYPES.get(cls) or _class_json_type(cls)
            seen = fields.get(key)
            if seen is None:
                fields[key] = {kind}
            elif kind not in seen:
                seen.add(kind)
        for record in records[: self.sample_size - len(self.samples)]:
            self.samples.append(_sample(record))

    def _spool_write(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        if self._spool is None:
            self._spool = _Spool(self._spool_directory)
        self._spool.write(data)
        self._part_hash.update(data)
        self._checksum.update(data)
        self.bytes += len(data)

    def _ship_part(self) -> None:
        spool, self._spool = self._spool, None
        if spool is None:
            return
        try:
            name = f"{self.prefix}/part-{len(self._parts):05d}.jsonl"
            saved = self.storage.save(name, spool.content(name))
        finally:
            spool.close()
        self._parts.append(
            {"name": saved, "count": self._part_count, "bytes": self._part_size, "sha256": self._part_hash.hexdigest()}
        )
        self._part_hash = hashlib.sha256()
        self._part_count = 0
        self._part_size = 0

    # -- finishing ----------------------------------------------------------------
    def close(self) -> dict[str, Any]:
        """Ship the last part and return the manifest."""
        if self.manifest is not None:
            return self.manifest
        if self._finished:
            raise RecordStoreError("this writer was aborted")
        try:
            self._ship_part()
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self.manifest = {
            "format": "jsonl",
            "prefix": self.prefix,
            "parts": self._parts,
            "count": self.count,
            "bytes": self.bytes,
            "checksum": f"sha256:{self._checksum.hexdigest()}",
            "fields": [{"name": name, "types": sorted(types)} for name, types in self._fields.items()],
            "samples": self.samples,
        }
        return self.manifest

    def abort(self) -> None:
        """Forget the records and delete every part already shipped."""
        self._finished = True
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        delete_parts(self._parts, storage=self.storage)
        self._parts = []

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._finished:
            self.close()


# -- reading ----------------------------------------------------------------------
def _parts(manifest_or_parts: dict[str, Any] | Sequence[dict[str, Any] | str]) -> list[dict[str, Any]]:
    parts = manifest_or_parts["parts"] if isinstance(manifest_or_parts, dict) else manifest_or_parts
    return [{"name": part} if isinstance(part, str) else part for part in parts]


def _open(name: str, storage: Storage):
    try:
        return storage.open(name, "rb")
    except FileNotFoundError:
        raise RecordStoreError(f"record part {name} is missing from storage") from None


def _iter_part_lines(name: str, storage: Storage) -> Iterator[tuple[int, bytes]]:
    with _open(name, storage) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.isspace():  # blank lines are skipped (isspace, unlike strip, copies nothing)
                yield number, line


def _loads(name: str, number: int, line: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise RecordStoreError(f"record part {name}, line {number}: {error}") from None


def _project(record: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    return record if fields is None else {field: record[field] for field in fields if field in record}


def iter_records(
    manifest_or_parts: dict[str, Any] | Sequence[dict[str, Any] | str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    fields: Sequence[str] | None = None,
    storage: Storage | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Stream the records back in lists of at most `batch_size`, part after part.

    Memory holds one batch; `fields` keeps only those keys of each record.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    storage = storage or default_storage
    loads = orjson.loads  # _loads() inlined: this loop runs once per record
    batch: list[dict[str, Any]] = []
    for part in _parts(manifest_or_parts):
        for number, line in _part_slice_lines(part, storage):
            try:
                record = loads(line)
            except orjson.JSONDecodeError as error:
                raise RecordStoreError(f"record part {part['name']}, line {number}: {error}") from None
            batch.append(record if fields is None else _project(record, fields))
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _part_slice_lines(part: dict[str, Any], storage: Storage) -> Iterator[tuple[int, bytes]]:
    """The part's record lines, or only records `start` … `stop - 1` of it when the part entry
    is a slice (see `split`): lines before the slice are skipped without being parsed."""
    start, stop = part.get("start", 0), part.get("stop")
    if not start and stop is None:
        yield from _iter_part_lines(part["name"], storage)
        return
    for index, numbered in enumerate(_iter_part_lines(part["name"], storage)):
        if stop is not None and index >= stop:
            return
        if index >= start:
            yield numbered


def split(manifests: Sequence[dict[str, Any]], shards: int) -> list[dict[str, Any]]:
    """The records of `manifests`, in order, cut into `shards` slices of nearly equal counts:
    each a manifest-like `{"parts": [...], "count": n, "offset": records before it}` whose part
    entries may carry a record range (`start`, `stop`), readable with `iter_records`. Nothing
    is read or copied."""
    entries = [part for manifest in manifests for part in _parts(manifest)]
    total = sum(int(part["count"]) for part in entries)
    shards = max(1, min(shards, total))
    slices: list[dict[str, Any]] = []
    cursor = 0  # records of `entries` handed out so far
    position = (0, 0)  # (entry index, record offset inside it)
    for index in range(shards):
        wanted = total * (index + 1) // shards - cursor
        parts: list[dict[str, Any]] = []
        entry, offset = position
        while wanted and entry < len(entries):
            part = entries[entry]
            available = int(part["count"]) - offset
            take = min(available, wanted)
            if take:
                whole = offset == 0 and take == int(part["count"])
                parts.append(dict(part) if whole else {**part, "start": offset, "stop": offset + take})
            wanted -= take
            cursor += take
            offset += take
            if offset >= int(part["count"]):
                entry, offset = entry + 1, 0
        position = (entry, offset)
        count = sum(_slice_count(part) for part in parts)
        slices.append({"parts": parts, "count": count, "offset": cursor - count})
    return slices


def _slice_count(part: dict[str, Any]) -> int:
    if "stop" in part:
        return int(part["stop"]) - int(part.get("start", 0))
    return int(part["count"])


def concat(manifests: Sequence[dict[str, Any]], *, prefix: str = "") -> dict[str, Any]:
    """One manifest for the records of several, in order, without copying a byte (the shards
    of a node write their own parts; this is the node's artifact). Its checksum covers the
    parts' own checksums, which `verify` checks part by part."""
    parts = [part for manifest in manifests for part in _parts(manifest)]
    fields: dict[str, set[str]] = {}
    for manifest in manifests:
        for field in manifest.get("fields", []):
            fields.setdefault(field["name"], set()).update(field["types"])
    samples = [sample for manifest in manifests for sample in manifest.get("samples", [])][:SAMPLE_RECORDS]
    digest = hashlib.sha256("".join(part.get("sha256", "") for part in parts).encode())
    return {
        "format": "jsonl",
        "prefix": prefix,
        "parts": parts,
        "count": sum(int(manifest["count"]) for manifest in manifests),
        "bytes": sum(int(manifest.get("bytes", 0)) for manifest in manifests),
        "checksum": f"{_PARTS_CHECKSUM}{digest.hexdigest()}",
        "fields": [{"name": name, "types": sorted(types)} for name, types in fields.items()],
        "samples": samples,
    }


_PARTS_CHECKSUM = "sha256-of-parts:"


def read_slice(
    manifest: dict[str, Any],
    offset: int,
    limit: int,
    *,
    fields: Sequence[str] | None = None,
    storage: Storage | None = None,
) -> list[dict[str, Any]]:
    """Records `offset` … `offset + limit - 1`: whole parts before the offset are skipped by
    their counts and lines within a part without parsing them, so page 1000 costs a scan,
    not a parse, of what comes before it."""
    storage = storage or default_storage
    records: list[dict[str, Any]] = []
    skip = max(offset, 0)
    for part in _parts(manifest):
        if len(records) >= limit:
            break
        count = part.get("count")
        if count is not None and skip >= count:
            skip -= count
            continue
        for number, line in _iter_part_lines(part["name"], storage):
            if skip:
                skip -= 1
                continue
            records.append(_project(_loads(part["name"], number, line), fields))
            if len(records) >= limit:
                break
    return records


def iter_raw(manifest: dict[str, Any], *, storage: Storage | None = None) -> Iterator[bytes]:
    """The stored JSON Lines bytes, verbatim, in chunks (an export that needs no re-encoding)."""
    storage = storage or default_storage
    for part in _parts(manifest):
        with _open(part["name"], storage) as handle:
            while chunk := handle.read(_RAW_CHUNK):
                yield chunk


def verify(manifest: dict[str, Any], *, storage: Storage | None = None) -> bool:
    """Whether the stored bytes still match the manifest's checksum."""
    if str(manifest.get("checksum", "")).startswith(_PARTS_CHECKSUM):
        storage = storage or default_storage
        for part in _parts(manifest):
            part_hash = hashlib.sha256()
            for chunk in iter_raw({"parts": [part]}, storage=storage):
                part_hash.update(chunk)
            if part_hash.hexdigest() != part.get("sha256"):
                return False
        return concat([manifest])["checksum"] == manifest["checksum"]
    checksum = hashlib.sha256()
    for chunk in iter_raw(manifest, storage=storage):
        checksum.update(chunk)
    return manifest.get("checksum") == f"sha256:{checksum.hexdigest()}"


def delete_parts(
    manifest_or_parts: dict[str, Any] | Sequence[dict[str, Any] | str], *, storage: Storage | None = None
) -> None:
    """Delete the stored parts (missing ones are fine: deleting twice is harmless)."""
    storage = storage or default_storage
    for part in _parts(manifest_or_parts):
        with contextlib.suppress(FileNotFoundError):
            storage.delete(part["name"])
