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
from typing import Any
import uuid

from nodes.execution import ExecutionContext, NodeFailed, NodeResult

BATCH_SIZE = 1000


def artifact_prefix(ctx: ExecutionContext) -> str:
    """Where a node's artifact goes: unique per execution, so a retry never mixes with an
    earlier attempt's parts."""
    owner = f"run-{ctx.run_id}" if ctx.run_id else f"node-tests/owner-{ctx.owner_id}"
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


def indexed_records(ctx: ExecutionContext, manifests: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, record) for every input record, read as `read_inputs` does. In a shard the index
    goes on from the records of the shards before it, so `{{ index }}` numbers the node's input."""
    index = (getattr(ctx, "shard", None) or {}).get("offset", 0)
    for batch in read_inputs(ctx, manifests):
        for record in batch:
            yield index, record
            index += 1


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
    if not ctx.run_id:  # a node test: what would be written, without reading it
        count = count_of(manifests) + (latest.record_count if latest else 0)
        return NodeResult(output={"dataset": name, "mode": mode, "count": count, "written": False})
    earlier = _version_of_a_lost_attempt(ctx)
    if earlier is not None:
        ctx.log(f"kept {name} v{earlier.number}, written by attempt {ctx.attempt - 1}, whose worker was lost")
        return result(earlier.manifest, records_in=count_of(manifests), dataset=name, version=earlier.number, mode=mode)
    batches = read_inputs(ctx, ([latest.manifest] if latest else []) + manifests)
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
            dataset,
            batches,
            source=f"run {ctx.run_id}, node {ctx.node_key} ({mode})",
            produced_by_run=ctx.run_id,
            produced_by_node_run_id=ctx.node_run.pk,
        )
    except BaseException:
        if created:  # no empty dataset is left behind by a failed first write
            dataset.delete()
        raise
    ctx.log(f"wrote {name} v{version.number}: {version.record_count} records")
    return result(version.manifest, records_in=count_of(manifests), dataset=name, version=version.number, mode=mode)


def _version_of_a_lost_attempt(ctx: ExecutionContext):
    """The version an earlier attempt of this node run wrote, if its worker died before it
    could record success: writing again would publish the records twice."""
    from datasets.models import DatasetVersion

    if ctx.attempt == 1:
        return None
    return DatasetVersion.objects.filter(produced_by_node_run=ctx.node_run).first()


def data_cleaning(ctx: ExecutionContext) -> NodeResult:
    """The operator chain over every record; per-operator counters and samples of dropped
    records (by reason) go into the output, as `operators`.

    In a shard (`ctx.shard`), only the chain's stage `ctx.shard["stage"]` runs (see
    `cleaning_stages`); a stage followed by a deduplicator writes its records partitioned by
    that deduplicator's key, so equal keys meet in one shard of the next stage."""
    from nodes.operators.base import OperatorConfigError
    from nodes.operators.chain import Chain
    from nodes.saved_tasks import expand_config

    config = expand_config(ctx.owner_id, "cleaning", ctx.config)
    try:
        chain = Chain.from_steps(config.get("operators", []), text_field=config.get("text_field", "text"))
    except OperatorConfigError as error:
        raise NodeFailed(str(error)) from None
    manifests = require_input(ctx)
    shard = getattr(ctx, "shard", None)
    if shard is None:
        manifest = write_artifact(ctx, chain.process(read_inputs(ctx, manifests)))
        ctx.log(f"kept {manifest['count']} of {chain.records_in} records")
        return result(manifest, records_in=chain.records_in, operators=chain.report())
    stages = cleaning_stages(chain)
    stage = stages[shard["stage"]]
    kept = stage.process(read_inputs(ctx, manifests))
    if shard["stage"] + 1 == len(stages):
        manifest = write_artifact(ctx, kept)
        return result(manifest, records_in=stage.records_in, operators=stage.report())
    following = stages[shard["stage"] + 1]
    # The next stage has as many shards as this one, except that near_dedup has no exact key
    # (its LSH bands are many keys): its stage runs as one shard.
    width = shard["of"] if hasattr(following.operators[0], "key") else 1
    partitions = write_partitions(ctx, kept, following, width)
    return NodeResult(
        output={"partitions": partitions, "operators": stage.report()},
        records_in=stage.records_in,
        records_out=sum(partition["count"] for partition in partitions),
    )


def cleaning_stages(chain):
    """The chain's stages for a sharded run: cut before each deduplicator, and an empty first
    stage when the chain starts with one, so the input is routed by key before it."""
    from nodes.operators.base import Deduplicator
    from nodes.operators.chain import Chain

    stages = chain.stages()
    if stages[0].operators and isinstance(stages[0].operators[0], Deduplicator):
        stages.insert(0, Chain([], chain.samples_per_reason, chain.sample_chars))
    return stages


def write_partitions(ctx: ExecutionContext, batches, chain, width: int) -> list[dict[str, Any]]:
    """Write the batches as `width` artifacts, each record to partition `chain.partition(record)`.
    If anything raises, every part written so far is deleted."""
    from datasets import records

    prefix = artifact_prefix(ctx)
    writers = [records.RecordWriter(f"{prefix}/p{index:03d}") for index in range(width)]
    try:
        for batch in batches:
            routed: list[list[dict[str, Any]]] = [[] for _ in range(width)]
            for record in batch:
                routed[chain.partition(record, width)].append(record)
            for writer, part in zip(writers, routed, strict=True):
                if part:
                    writer.write_batch(part)
        return [writer.close() for writer in writers]
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
