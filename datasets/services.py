"""Dataset actions: the API, the pages, the admin and the engine call these, nothing else.

A version is written in two steps: the records go to the record store first (a unique
prefix per attempt), then the row is created in one transaction. If either step fails
the parts are deleted, so a failed import leaves neither a row nor files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
import uuid

from django.db import IntegrityError, transaction
from django.db.models import Max, QuerySet
import orjson

from datasets import exporters, importers, records
from datasets.errors import DatasetError, DatasetImportError
from datasets.models import Dataset, DatasetVersion
from datasets.stats import compute_stats

MAX_PAGE_SIZE = 500


def visible_datasets(user) -> QuerySet[Dataset]:
    """A dataset is visible to its owner and to staff (like pipelines)."""
    queryset = Dataset.objects.select_related("owner")
    return queryset if user.is_staff else queryset.filter(owner=user)


def _check_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(tag, str) and tag.strip() for tag in tags):
        raise DatasetError("tags", "must be a list of non-empty strings")
    return list(dict.fromkeys(tag.strip() for tag in tags))


def _check_name(owner, name: str, *, exclude: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise DatasetError("name", "must not be empty")
    taken = Dataset.objects.filter(owner=owner, name=name).exclude(pk=exclude)
    if taken.exists():
        raise DatasetError("name", f"you already have a dataset named {name!r}")
    return name


def create_dataset(*, owner, name: str, description: str = "", tags: Sequence[str] = ()) -> Dataset:
    name = _check_name(owner, name)
    try:
        with transaction.atomic():
            return Dataset.objects.create(owner=owner, name=name, description=description, tags=_check_tags(list(tags)))
    except IntegrityError:  # a concurrent create with the same name
        raise DatasetError("name", f"you already have a dataset named {name!r}") from None


def update_dataset(
    dataset: Dataset, *, name: str | None = None, description: str | None = None, tags: Sequence[str] | None = None
) -> Dataset:
    if name is not None:
        dataset.name = _check_name(dataset.owner, name, exclude=dataset.pk)
    if description is not None:
        dataset.description = description
    if tags is not None:
        dataset.tags = _check_tags(list(tags))
    dataset.save()
    return dataset


def delete_dataset(dataset: Dataset) -> None:
    """Delete the dataset and its versions; their record files go once this commits."""
    dataset.delete()


# -- writing versions ----------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """What to import: an open binary file (an upload) or a folder/file on the server."""

    name: str
    handle: BinaryIO | None = None
    path: Path | None = None
    root: Path | None = None
    #: The request field the source came from; errors about its content name it.
    field: str = "file"

    @classmethod
    def upload(cls, handle: BinaryIO, name: str) -> Source:
        return cls(name=name, handle=handle)

    @classmethod
    def server_path(cls, raw: str) -> Source:
        path, root = importers.resolve_server_path(raw)
        return cls(name=raw, path=path, root=root, field="path")


def _new_prefix(dataset: Dataset) -> str:
    return f"datasets/{dataset.pk}/{uuid.uuid4().hex}"


def _create_version_row(dataset: Dataset, manifest: dict[str, Any], **fields: Any) -> DatasetVersion:
    """Number and save the version. On failure the parts are deleted before re-raising."""
    run = fields.pop("produced_by_run", None)
    fields["produced_by_run_id"] = run if run is None or isinstance(run, int) else run.pk
    try:
        with transaction.atomic():
            # Lock the dataset row: concurrent versions of one dataset are numbered one at a time.
            if not Dataset.objects.select_for_update().filter(pk=dataset.pk).exists():
                raise DatasetError("dataset", f"dataset {dataset.name!r} was deleted while the version was written")
            latest = DatasetVersion.objects.filter(dataset=dataset).aggregate(n=Max("number"))["n"] or 0
            return DatasetVersion.objects.create(
                dataset=dataset,
                number=latest + 1,
                manifest=manifest,
                record_count=manifest["count"],
                size_bytes=manifest["bytes"],
                **fields,
            )
    except BaseException:
        records.delete_parts(manifest)
        raise


def write_version(
    dataset: Dataset,
    batches: Iterable[list[dict[str, Any]]],
    *,
    user=None,
    source: str = "",
    produced_by_run=None,
    produced_by_node_run_id: int | None = None,
    part_records: int = records.DEFAULT_PART_RECORDS,
    name: str = "records",
) -> DatasetVersion:
    """Write record batches as the next version of `dataset` (used by imports and the
    Output Dataset node alike). Nothing is left behind if the batches raise.

    `produced_by_run` is a Run or its id."""
    with records.RecordWriter(_new_prefix(dataset), part_records=part_records) as writer:
        for batch in batches:
            try:
                writer.write_batch(batch)
            except (TypeError, orjson.JSONEncodeError) as error:
                raise DatasetImportError(name, None, f"record {writer.count + 1} cannot be stored: {error}") from None
        manifest = writer.close()
    return _create_version_row(
        dataset,
        manifest,
        created_by=user,
        source=source[:500],
        produced_by_run=produced_by_run,
        produced_by_node_run_id=produced_by_node_run_id,
    )


def import_version(
    dataset: Dataset,
    source: Source,
    fmt: str | None = None,
    *,
    user=None,
    part_records: int = records.DEFAULT_PART_RECORDS,
) -> DatasetVersion:
    """Import a file or folder as the next version of `dataset`.

    `fmt` defaults to what the file name (or being a folder) says. Bad content raises
    DatasetImportError naming the file and line; no version and no files remain.
    """
    is_dir = source.path is not None and source.path.is_dir()
    fmt = importers.check_format(fmt) if fmt else importers.guess_format(source.name, is_dir=is_dir)
    origin = source.path if source.path is not None else source.handle
    try:
        batches = importers.read_records(origin, source.name, fmt, root=source.root)
        return write_version(
            dataset,
            batches,
            user=user,
            source=f"{'upload' if source.handle is not None else 'path'} {source.name} ({fmt})",
            part_records=part_records,
            name=source.name,
        )
    except DatasetError as error:
        if isinstance(error, DatasetImportError) and source.field != "file":
            error.field = source.field
        raise


# -- reading versions ----------------------------------------------------------------
def latest_version(dataset: Dataset) -> DatasetVersion | None:
    return DatasetVersion.objects.filter(dataset=dataset).order_by("-number").first()


def get_version(dataset: Dataset, number: int) -> DatasetVersion:
    version = DatasetVersion.objects.filter(dataset=dataset, number=number).first()
    if version is None:
        raise DatasetError("number", f"{dataset.name} has no version {number}")
    return version


def _fields(version: DatasetVersion, fields: Sequence[str] | None) -> list[str] | None:
    if not fields:
        return None
    known = {field["name"] for field in version.manifest.get("fields", [])}
    unknown = [field for field in fields if field not in known]
    if unknown:
        raise DatasetError("fields", f"no such field: {', '.join(unknown)}")
    return list(dict.fromkeys(fields))


def preview(version: DatasetVersion, page: int = 1, page_size: int = 50, fields: Sequence[str] | None = None) -> dict:
    """One page of records (1-based), optionally only some fields."""
    if page < 1:
        raise DatasetError("page", "must be 1 or more")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise DatasetError("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    chosen = _fields(version, fields)
    count = version.record_count
    pages = max(1, -(-count // page_size))
    rows = records.read_slice(version.manifest, (page - 1) * page_size, page_size, fields=chosen)
    return {"count": count, "page": page, "page_size": page_size, "pages": pages, "records": rows}


def stats(version: DatasetVersion) -> dict[str, Any]:
    """Statistics of the version, computed by one streaming pass the first time, then cached."""
    if version.stats is None:
        computed = compute_stats(records.iter_records(version.manifest))
        # The only write to a version after it is created: the cache, filled once.
        DatasetVersion.objects.filter(pk=version.pk, stats__isnull=True).update(stats=computed)
        version.stats = computed
    return version.stats


@dataclass(frozen=True)
class Export:
    chunks: Iterator[bytes]
    content_type: str
    filename: str


def export_version(version: DatasetVersion, fmt: str = "jsonl", options: dict[str, Any] | None = None) -> Export:
    """`options`: those of the Label Studio format (`exporters.LABEL_STUDIO_OPTIONS`)."""
    if fmt not in exporters.EXPORT_FORMATS:
        raise DatasetError("format", f"unknown export format {fmt!r}; use one of {', '.join(exporters.EXPORT_FORMATS)}")
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in version.dataset.name) or "dataset"
    return Export(
        chunks=exporters.export(version.manifest, fmt, options),
        content_type=exporters.CONTENT_TYPES[fmt],
        filename=f"{stem}-v{version.number}.{exporters.FILE_EXTENSIONS.get(fmt, fmt)}",
    )


# -- demo ----------------------------------------------------------------------------
DEMO_DATASET = "web-sample"


def create_demo_dataset(user, records_count: int = 300) -> Dataset:
    """A small made-up web crawl for the demo pipelines, once: HTML, stray whitespace,
    e-mail addresses and phone numbers, short fragments and exact duplicates."""
    existing = Dataset.objects.filter(owner=user, name=DEMO_DATASET).first()
    if existing is not None:
        return existing
    topics = ["fractions", "photosynthesis", "the French revolution", "sorting algorithms", "tide pools"]
    rows = []
    for index in range(records_count):
        topic = topics[index % len(topics)]
        if index % 10 == 7:
            text = "Click here"  # too short to keep
        elif index % 10 == 9:
            text = rows[index - 9]["text"]  # an exact duplicate
        else:
            text = (
                f"<div><h2>Notes on {topic} #{index}</h2>\n<p>These   notes explain {topic} step by step, "
                f"with worked examples.</p>  <p>Questions: write to tutor{index}@example.org "
                f"or call +1 415 555 {1000 + index:04d}.</p></div>"
            )
        rows.append({"id": index + 1, "url": f"https://example.org/notes/{index + 1}", "text": text})
    dataset = create_dataset(owner=user, name=DEMO_DATASET, description="A made-up web crawl for the demo pipelines.")
    write_version(dataset, [rows], user=user, source="demo data")
    return dataset
