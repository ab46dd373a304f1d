"""What the data nodes do: read record artifacts, transform them in batches, write new ones.

An artifact is a record-store manifest (`datasets/records.py`): JSON Lines parts in storage
plus count, fields and samples. A data node's output is a small summary that carries its
artifact's manifest:

    {"count": 1200, "fields": [...], "samples": [...], "manifest": {...}, ...node specifics}

Downstream nodes read `manifest` from their inputs; messages and outputs hold parts' names,
never records. Records stream batch by batch (memory holds one batch and the operators'
bounded state), progress is reported per batch (which is also where a cancelled run stops),
and a failure deletes the parts written so far, so no half-written artifact remains.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
import re
from typing import Any
import uuid

from nodes.execution import ExecutionContext, NodeFailed, NodeResult

BATCH_SIZE = 1000


def artifact_prefix(ctx: ExecutionContext) -> str:
    """Where a node's artifact goes: unique per execution, so a retry never mixes with an
    earlier attempt's parts."""
    owner = f"run-{ctx.run_id}" if ctx.run_id else "node-tests"
    return f"artifacts/{owner}/{ctx.node_key}-{uuid.uuid4().hex[:16]}"


def input_manifests(ctx: ExecutionContext) -> list[dict[str, Any]]:
    """The artifacts of the upstream data nodes, in upstream key order."""
    return [
        output["manifest"]
        for _, output in sorted(ctx.inputs.items())
        if isinstance(output, dict) and isinstance(output.get("manifest"), dict)
    ]


def require_input(ctx: ExecutionContext) -> list[dict[str, Any]]:
    manifests = input_manifests(ctx)
    if not manifests:
        raise NodeFailed("no records came in: connect an upstream data node (e.g. Input Dataset)")
    return manifests


def count_of(manifests: list[dict[str, Any]]) -> int:
    return sum(int(manifest.get("count", 0)) for manifest in manifests)


def read_inputs(ctx: ExecutionContext, manifests: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Every input record, in batches, reporting progress (records read) after each batch."""
    from datasets import records

    total = count_of(manifests) or None
    done = 0
    for manifest in manifests:
        for batch in records.iter_records(manifest, BATCH_SIZE):
            yield batch
            done += len(batch)
            ctx.progress(done / total if total else None, records_in=done)


def write_artifact(ctx: ExecutionContext, batches: Iterable[list[dict[str, Any]]]) -> dict[str, Any]:
    """Write the batches as this node's artifact and return its manifest. If anything raises
    (bad data, a cancelled run), the parts written so far are deleted."""
    from datasets import records

    with records.RecordWriter(artifact_prefix(ctx)) as writer:
        for batch in batches:
            writer.write_batch(batch)
        return writer.close()


def result(manifest: dict[str, Any], *, records_in: int | None = None, **extra: Any) -> NodeResult:
    output = {
        "count": manifest["count"],
        "fields": manifest["fields"],
        "samples": manifest["samples"],
        "manifest": manifest,
        **extra,
    }
    return NodeResult(output=output, records_in=records_in, records_out=manifest["count"])


# --- the six nodes -------------------------------------------------------------------


def input_dataset(ctx: ExecutionContext) -> NodeResult:
    """The chosen version's manifest is the artifact: nothing is copied."""
    from datasets import services
    from datasets.models import Dataset

    name, wanted = ctx.config["dataset"], ctx.config.get("version", "latest")
    dataset = Dataset.objects.filter(owner_id=ctx.owner_id, name=name).first()
    if dataset is None:
        raise NodeFailed(f"dataset {name!r} does not exist")
    latest = wanted == "latest"
    version = services.latest_version(dataset) if latest else dataset.versions.filter(number=wanted).first()
    if version is None:
        missing = "no versions yet" if latest else f"no version {wanted}"
        raise NodeFailed(f"dataset {name!r} has {missing}")
    ctx.log(f"{name} v{version.number}: {version.record_count} records")
    ctx.progress(1.0, records_out=version.record_count)
    return result(version.manifest, dataset=name, version=version.number)


def output_dataset(ctx: ExecutionContext) -> NodeResult:
    """A new version of the named dataset (created if missing): the incoming records, after
    the latest version's records when appending. The records are copied, so the version
    stays whole whatever happens to the run's artifacts. A node test writes nothing."""
    from datasets import services
    from datasets.errors import DatasetError
    from datasets.models import Dataset

    manifests = require_input(ctx)
    name, mode = ctx.config["dataset"], ctx.config.get("mode", "overwrite")
    dataset = Dataset.objects.filter(owner_id=ctx.owner_id, name=name).first()
    latest = services.latest_version(dataset) if dataset is not None and mode == "append" else None
    batches = read_inputs(ctx, ([latest.manifest] if latest else []) + manifests)
    if not ctx.run_id:
        count = sum(len(batch) for batch in batches)
        return NodeResult(output={"dataset": name, "mode": mode, "count": count, "written": False})
    created = dataset is None
    if created:
        from django.contrib.auth import get_user_model

        try:
            dataset = services.create_dataset(owner=get_user_model().objects.get(pk=ctx.owner_id), name=name)
        except DatasetError as error:
            raise NodeFailed(f"dataset: {error}") from None
        ctx.log(f"created dataset {name}")
    try:
        version = services.write_version(
            dataset, batches, source=f"run {ctx.run_id}, node {ctx.node_key} ({mode})", produced_by_run=ctx.run_id
        )
    except BaseException:
        if created:  # no empty dataset is left behind by a failed first write
            dataset.delete()
        raise
    ctx.log(f"wrote {name} v{version.number}: {version.record_count} records")
    return result(version.manifest, records_in=count_of(manifests), dataset=name, version=version.number, mode=mode)


def data_collection(ctx: ExecutionContext) -> NodeResult:
    """Files and folders under the import roots (`DATAMATE_IMPORT_ROOTS`), by path or glob,
    read with the dataset importers: JSONL, JSON arrays, CSV, Parquet, and text, Markdown
    or HTML files (one record per file)."""
    from datasets import importers
    from datasets.errors import DatasetError

    if "task" in ctx.config:
        raise NodeFailed("task: saved collection tasks are not available yet; configure the source inline")
    source = ctx.config.get("source")
    if source != "files":
        raise NodeFailed(f"source: collecting from {source} is not available yet; use files")
    fmt = ctx.config.get("format", "auto")
    try:
        files = [match for raw in ctx.config["paths"] for match in _matches(raw)]
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
                if kind == "text":
                    yield [{"path": name, "text": path.read_text(encoding="utf-8")}]
                elif kind == "folder":
                    yield from importers.read_records(path, name, "folder", root=root)
                else:
                    with path.open("rb") as handle:
                        yield from importers.read_records(handle, name, kind)
            except DatasetError as error:
                raise NodeFailed(error.message) from None
            except UnicodeDecodeError as error:
                raise NodeFailed(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})") from None
            ctx.progress(number / len(files))
            ctx.log(f"read {name}")

    manifest = write_artifact(ctx, batches())
    return result(manifest, files=len(files))


def _matches(raw: str):
    """(real path, root) for each file a path or glob names, all inside the import roots."""
    from datasets import importers
    from datasets.errors import DatasetError

    if not any(char in raw for char in "*?["):
        return [importers.resolve_server_path(raw)]
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


def data_cleaning(ctx: ExecutionContext) -> NodeResult:
    """The operator chain over every record; per-operator counters and samples of dropped
    records (by reason) go into the output, as `operators`."""
    from nodes.operators.base import OperatorConfigError
    from nodes.operators.chain import Chain

    if "task" in ctx.config:
        raise NodeFailed("task: saved cleaning tasks are not available yet; list the operators inline")
    try:
        chain = Chain.from_steps(ctx.config.get("operators", []), text_field=ctx.config.get("text_field", "text"))
    except OperatorConfigError as error:
        raise NodeFailed(str(error)) from None
    manifests = require_input(ctx)
    manifest = write_artifact(ctx, chain.process(read_inputs(ctx, manifests)))
    report = chain.report()
    ctx.log(f"kept {manifest['count']} of {chain.records_in} records")
    return result(manifest, records_in=chain.records_in, operators=report)


def data_synthesis(ctx: ExecutionContext) -> NodeResult:
    """The built-in synthesizer renders `prompt_template` in the sandbox: once per input
    record (as `record`), or `count` times from nothing (with `index`). Other models would
    plug in here; none is downloaded at run time."""
    from nodes.expressions import ExpressionError, render

    model = ctx.config.get("model", "builtin-template")
    if model != "builtin-template":
        raise NodeFailed(f"model: no synthesis model {model!r} is configured (available: builtin-template)")
    template = ctx.config["prompt_template"]
    field = ctx.config.get("output_field", "text")
    variables = {"params": ctx.params}

    def rendered(record: dict[str, Any], index: int) -> dict[str, Any]:
        try:
            text = render(template, {**variables, "record": record, "index": index})
        except ExpressionError as error:
            raise NodeFailed(f"prompt_template: {error}") from None
        return {**record, field: text if isinstance(text, str) else str(text)}

    def per_record(manifests: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        index = 0
        for batch in read_inputs(ctx, manifests):
            yield [rendered(record, index + offset) for offset, record in enumerate(batch)]
            index += len(batch)

    manifests = input_manifests(ctx)
    if manifests:
        batches = per_record(manifests)
        records_in = count_of(manifests)
    else:
        count = ctx.config.get("count", 1)
        batches = _generated(ctx, count, lambda index: rendered({"index": index}, index))
        records_in = None
    manifest = write_artifact(ctx, batches)
    return result(manifest, records_in=records_in, model=model)


def _generated(ctx: ExecutionContext, count: int, make) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, count, BATCH_SIZE):
        yield [make(index) for index in range(start, min(count, start + BATCH_SIZE))]
        done = min(count, start + BATCH_SIZE)
        ctx.progress(done / count, records_out=done)


def data_annotation(ctx: ExecutionContext) -> NodeResult:
    """Rule-based labelling: the first label whose rule (keywords, or regular expressions
    written /like this/) matches the text; else `default_label` (or no label)."""
    if ctx.config.get("method", "rules") != "rules":
        raise NodeFailed("method: no annotation model is configured; use method rules")
    text_field = ctx.config.get("text_field", "text")
    label_field = ctx.config.get("label_field", "label")
    default = ctx.config.get("default_label")
    rules = [(label, _matcher(label, patterns)) for label, patterns in ctx.config.get("rules", {}).items()]
    counts: dict[str, int] = {}

    def annotate(record: dict[str, Any]) -> dict[str, Any]:
        text = record.get(text_field)
        label = default
        if isinstance(text, str):
            label = next((name for name, matches in rules if matches(text)), default)
        counts[str(label)] = counts.get(str(label), 0) + 1
        return {**record, label_field: label}

    manifests = require_input(ctx)
    manifest = write_artifact(ctx, ([annotate(r) for r in batch] for batch in read_inputs(ctx, manifests)))
    return result(manifest, records_in=count_of(manifests), labels=ctx.config["labels"], label_counts=counts)


def _matcher(label: str, patterns: list[str]):
    parts = []
    for pattern in patterns:
        if len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
            parts.append(pattern[1:-1])
        else:
            parts.append(re.escape(pattern))
    try:
        compiled = re.compile("|".join(parts), re.IGNORECASE)
    except re.error as error:
        raise NodeFailed(f"rules.{label}: not a valid regular expression: {error}") from None
    return compiled.search
