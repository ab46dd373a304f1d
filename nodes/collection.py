"""Data Collection: records from files under the import roots, HTTP(S) URLs or a SQL query.

`source` picks one; `task: <name>` takes the source from a saved collection task, with the
node's own keys on top (`nodes/saved_tasks.py`). Every source streams batches into the
node's artifact (`nodes/data.py`), so a failure at any point leaves no parts behind.

- files: paths or globs inside DATAMATE_IMPORT_ROOTS, read with the dataset importers.
- http: each URL through `nodes/fetch.py` (allowlist, address checks, size and time limits),
  read by format: JSONL, JSON array, CSV, Parquet, or text/HTML as one {"url", "text"} record.
- sql: `query` on the configured `connection`, read-only (`nodes/sql.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from jsonschema import Draft202012Validator

from nodes import fetch, registry, schemas, sql
from nodes.data import BATCH_SIZE, result, write_artifact
from nodes.execution import ExecutionContext, NodeFailed, NodeResult
from nodes.expressions import has_template
from nodes.registry import ConfigError

#: What a URL's content type says about its format ("auto" looks at the path's extension first).
CONTENT_TYPES = {
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "text/html": "text",
    "application/xhtml+xml": "text",
    "text/plain": "text",
    "text/markdown": "text",
}
NEEDED = {"files": ("paths",), "http": ("urls",), "sql": ("connection", "query")}


def data_collection(ctx: ExecutionContext) -> NodeResult:
    from nodes.saved_tasks import expand_config

    config = expand_config(ctx.owner_id, "collection", ctx.config)
    _check_resolved(config)
    source = config["source"]
    extra = {"task": ctx.config["task"]} if "task" in ctx.config else {}
    if source == "files":
        return _collect_files(ctx, config, extra)
    if source == "http":
        return _collect_urls(ctx, config, extra)
    if source == "sql":
        return _collect_query(ctx, config, extra)
    raise NodeFailed(f"source: must be files, http or sql, not {source!r}")


def _check_resolved(config: dict[str, Any]) -> None:
    """The config as the run resolved it (templates rendered, task expanded) must still fit
    the schema and the rules: a template may render to anything."""
    schema = registry.get("data_collection").config_schema
    error = next(Draft202012Validator(schema).iter_errors(config), None)
    if error is not None:
        raise NodeFailed(f"{schemas.locate(error, '')}: {schemas.message(error)}")
    problems = config_errors(config)
    if problems:
        raise NodeFailed(f"{problems[0].field}: {problems[0].message}")


# --- design-time rules (DataCollection.validate_config) -----------------------------


def config_errors(config: dict[str, Any]) -> list[ConfigError]:
    """Rules beyond the schema. Values that are templates are checked when a run resolves them."""
    errors: list[ConfigError] = []
    source = config.get("source")
    if "task" not in config:
        if source is None:
            return [ConfigError("source", "set either a saved collection task or an inline source")]
        errors += [
            ConfigError(field, f"required when source is {source}")
            for field in NEEDED.get(source if isinstance(source, str) else "", ())
            if not config.get(field)
        ]
    urls = config.get("urls")
    if isinstance(urls, list):
        for index, url in enumerate(urls):
            problem = fetch.url_problem(url) if isinstance(url, str) and not has_template(url) else None
            if problem:
                errors.append(ConfigError(f"urls[{index}]", problem))
    headers = config.get("headers")
    if isinstance(headers, dict):
        allowed = {name.lower() for name in fetch.ALLOWED_HEADERS}
        errors += [
            ConfigError(f"headers.{name}", f"may not be set here (allowed: {', '.join(fetch.ALLOWED_HEADERS)})")
            for name in headers
            if name.lower() not in allowed
        ]
    max_bytes = config.get("max_bytes")
    if isinstance(max_bytes, int) and max_bytes > settings.DATAMATE_COLLECT_MAX_BYTES:
        limit = settings.DATAMATE_COLLECT_MAX_BYTES
        errors.append(ConfigError("max_bytes", f"at most {limit} (DATAMATE_COLLECT_MAX_BYTES)"))
    query = config.get("query")
    if isinstance(query, str) and query and not has_template(query):
        problem = sql.query_problem(query)
        if problem:
            errors.append(ConfigError("query", problem))
    connection = config.get("connection")
    if isinstance(connection, str) and connection and not has_template(connection):
        try:
            sql.connection_url(connection)
        except sql.SqlSourceError as error:
            errors.append(ConfigError(error.field, error.message))
    return errors


# --- files --------------------------------------------------------------------------


def _collect_files(ctx: ExecutionContext, config: dict[str, Any], extra: dict[str, Any]) -> NodeResult:
    """Files and folders under the import roots (`DATAMATE_IMPORT_ROOTS`), by path or glob,
    read with the dataset importers: JSONL, JSON arrays, CSV, Parquet, and text, Markdown
    or HTML files (one record per file)."""
    from datasets import importers
    from datasets.errors import DatasetError

    fmt = config.get("format", "auto")
    try:
        files = [match for raw in config["paths"] for match in _matches(raw)]
    except DatasetError as error:
        raise NodeFailed(f"paths: {error.message}") from None
    if not files:
        raise NodeFailed("paths: nothing matched")

    def batches() -> Iterator[list[dict[str, Any]]]:
        for number, (path, root) in enumerate(files, 1):
            name = str(path.relative_to(root))
            try:
                kind = fmt
                if kind == "auto" and path.suffix.lower() in importers.TEXT_EXTENSIONS:
                    kind = "text"
                elif kind == "auto":
                    kind = importers.guess_format(name, is_dir=path.is_dir())
                if kind == "folder":
                    yield from importers.read_records(path, name, "folder", root=root)
                elif path.is_dir():
                    raise NodeFailed(f"{name} is a folder: read it with format 'auto', or name its files with a glob")
                elif kind == "text":
                    yield [{"path": name, "text": path.read_text(encoding="utf-8")}]
                else:
                    with path.open("rb") as handle:
                        yield from importers.read_records(handle, name, kind)
            except DatasetError as error:
                raise NodeFailed(error.message) from None
            except UnicodeDecodeError as error:
                raise NodeFailed(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})") from None
            ctx.progress(number / len(files))
        # One line, not one per file: a glob may match thousands (each line is a row and an event).
        shown = ", ".join(str(path.relative_to(root)) for path, root in files[:5])
        ctx.log(f"read {len(files)} file(s): {shown}{', …' if len(files) > 5 else ''}")

    manifest = write_artifact(ctx, batches())
    return result(manifest, files=len(files), **extra)


def _matches(raw: str):
    """(real path, root) for each file a path or glob names, all inside the import roots."""
    from datasets import importers
    from datasets.errors import DatasetError

    if "\x00" in raw or not any(char in raw for char in "*?["):
        return [importers.resolve_server_path(raw)]  # (which refuses a NUL byte)
    base = []
    parts = list(Path(raw).parts)
    while parts and not any(char in parts[0] for char in "*?["):
        base.append(parts.pop(0))
    if ".." in parts:
        raise DatasetError("path", f"{raw}: '..' is not allowed in import paths")
    if base:
        directory, root = importers.resolve_server_path(str(Path(*base)))
        directories = [(directory, root)]
    else:
        directories = [(root, root) for root in importers.import_roots()]
    found = []
    for directory, root in directories:
        for match in sorted(directory.glob(str(Path(*parts)))):
            real = match.resolve()
            # A symlink may point out of the root: such matches are refused, not followed.
            if not real.is_relative_to(root):
                raise DatasetError("path", f"{match}: is outside the import roots (DATAMATE_IMPORT_ROOTS)")
            if real.is_file():
                found.append((real, root))
    return found


# --- http ---------------------------------------------------------------------------


def _collect_urls(ctx: ExecutionContext, config: dict[str, Any], extra: dict[str, Any]) -> NodeResult:
    from datasets import importers
    from datasets.errors import DatasetError

    urls = config["urls"]
    fmt = config.get("format", "auto")
    max_bytes = config.get("max_bytes", settings.DATAMATE_COLLECT_MAX_BYTES)  # at most that (config_errors)
    timeout = config.get("timeout_seconds", settings.DATAMATE_COLLECT_TIMEOUT_SECONDS)
    headers = config.get("headers", {})
    fetched_bytes = 0

    def batches() -> Iterator[list[dict[str, Any]]]:
        nonlocal fetched_bytes
        for index, url in enumerate(urls):
            field = f"urls[{index}]"
            try:
                with fetch.open_url(url, max_bytes=max_bytes, timeout=timeout, headers=headers) as response:
                    kind = fmt if fmt != "auto" else _url_format(response)
                    if kind == "text":
                        yield [{"url": url, "text": response.text()}]
                    elif kind == "parquet":
                        with response.spooled() as spool:
                            yield from importers.read_records(spool, url, "parquet")
                    else:
                        yield from importers.read_records(response.stream, url, kind)
                    size = response.size
            except fetch.FetchError as error:
                raise NodeFailed(f"{field}: {error}") from None
            except DatasetError as error:
                raise NodeFailed(f"{field}: {error.message}") from None
            fetched_bytes += size
            ctx.log(f"fetched {url} ({size} bytes, {kind})")
            ctx.progress((index + 1) / len(urls))

    manifest = write_artifact(ctx, batches())
    return result(manifest, urls=len(urls), bytes=fetched_bytes, **extra)


def _url_format(response: fetch.Fetched) -> str:
    """From the URL path's extension if it is a known one, else from the content type."""
    from datasets import importers

    suffix = Path(urlsplit(response.final_url).path).suffix.lower()
    if suffix in importers.EXTENSIONS:
        return importers.EXTENSIONS[suffix]
    if suffix in importers.TEXT_EXTENSIONS:
        return "text"
    if response.content_type in CONTENT_TYPES:
        return CONTENT_TYPES[response.content_type]
    shown = response.content_type or "none"
    raise fetch.FetchError(f"{response.url}: cannot tell the format (content type {shown}); set format")


# --- sql ----------------------------------------------------------------------------


def _collect_query(ctx: ExecutionContext, config: dict[str, Any], extra: dict[str, Any]) -> NodeResult:
    name = config["connection"]
    timeout = config.get("timeout_seconds", settings.DATAMATE_COLLECT_TIMEOUT_SECONDS)

    def batches() -> Iterator[list[dict[str, Any]]]:
        rows = 0
        try:
            for batch in sql.query_batches(name, config["query"], timeout=timeout, batch_size=BATCH_SIZE):
                yield batch
                rows += len(batch)
                ctx.progress(None, records_out=rows)
        except sql.SqlSourceError as error:
            raise NodeFailed(str(error)) from None
        ctx.log(f"{rows} rows from {name}")

    manifest = write_artifact(ctx, batches())
    return result(manifest, connection=name, **extra)
