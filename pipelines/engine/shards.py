"""Sharded data nodes: one node's work spread over parallel Celery tasks.

A data node whose type can split (`NodeType.shardable`) and whose input is big enough (or
whose `shards` config asks for a count) does not execute in its node task. Instead:

1. `start_if_sharded` cuts the input into slices (`records.split`: part names and record
   ranges, nothing copied), stores one NodeShard row per slice, puts the node run in
   `waiting` (no worker held) and enqueues a task per shard.
2. Each shard task claims its row (`pending → running`) and runs the type's ordinary
   executor on its slice: the context's inputs hold the slice, `ctx.shard` says which one.
3. The shard that finds its stage complete wins a conditional update of the node run's
   `shard_stage` and either starts the next stage, when the outputs carry `partitions` (a
   deduplicating chain routes records by key: shard j of the next stage reads partition j of
   every output), or merges: the artifacts are concatenated (`records.concat`, no copy), the
   type merges its own output fields (`merge_shards`), and the node run succeeds as if it
   had run in one piece.

A failing shard is retried (the node's `retries`, with its backoff); when it runs out, the
node fails and its other shards are cancelled. Shards heartbeat like node runs, progress is
summed over the shards onto the node run, and the sweeper re-queues the shards of dead
workers. Whatever happens, a shard's result is taken at most once (conditional updates).
"""

from __future__ import annotations

from datetime import timedelta
import math
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Exists, F, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from nodes import data
from nodes.execution import NodeFailed, NodeResult
from nodes.expressions import ExpressionError
from pipelines.engine import cache, runtime, statements
from pipelines.engine.plan import Plan, PlanNode
from pipelines.engine.states import NodeState
from pipelines.models import NodeRun, NodeShard, Run

#: A shard's states are node-run states: pending → running → succeeded | failed | cancelled.
UNFINISHED = (NodeState.PENDING, NodeState.RUNNING)


def shard_count(config: dict[str, Any], records: int) -> int:
    """`shards: N`, or for `auto` one shard per DATAMATE_SHARD_RECORDS records, at most
    DATAMATE_MAX_SHARDS; never more shards than records."""
    wanted = config.get("shards", "auto")
    if wanted == "auto":
        wanted = min(settings.DATAMATE_MAX_SHARDS, math.ceil(records / settings.DATAMATE_SHARD_RECORDS))
    return max(1, min(int(wanted), records))


def start_if_sharded(run: Run, plan: Plan, node: PlanNode, node_run: NodeRun, context) -> bool:
    """Split the node's work into shards and start them; False when it runs in one piece."""
    from datasets import records

    if not node.node_type.shardable:
        return False
    manifests = data.input_manifests(context)
    total = data.count_of(manifests)
    count = shard_count(context.config, total)
    if count <= 1:
        return False
    slices = records.split(manifests, count)
    with transaction.atomic():
        if not runtime.transition(
            node_run, [NodeState.RUNNING], state=NodeState.WAITING, shard_stage=0, progress=0.0, heartbeat_at=None
        ):
            return True  # cancelled meanwhile
        runtime.write_log(node_run, f"split {total} records into {count} shards")
        _create_stage(node_run, 0, [[piece] for piece in slices])
    return True


def _create_stage(node_run: NodeRun, stage: int, inputs: list[list[dict[str, Any]]]) -> None:
    now = timezone.now()
    rows = NodeShard.objects.bulk_create(
        NodeShard(
            node_run=node_run,
            node_attempt=node_run.attempt,
            stage=stage,
            index=index,
            of=len(inputs),
            input=shard_input,
            ready_at=now,
        )
        for index, shard_input in enumerate(inputs)
    )
    ids = [row.pk for row in rows]  # SQLite and PostgreSQL return the ids of bulk inserts
    transaction.on_commit(lambda: enqueue(ids))


def enqueue(shard_ids: list[int], countdown: float | None = None) -> None:
    from pipelines.tasks import execute_shard

    for shard_id in shard_ids:
        execute_shard.apply_async((shard_id,), countdown=countdown, task_id=task_id(shard_id))


def task_id(shard_id: int) -> str:
    return f"datamate-node-shard-{shard_id}"


# --- executing one shard ------------------------------------------------------------


def execute(shard_id: int) -> None:
    """Celery's entry point for one shard. A duplicate delivery claims nothing; one that comes
    before the shard's retry is due is sent again for then (as for node runs)."""
    from pipelines.engine import execution

    now = timezone.now()
    due = Q(ready_at__isnull=True) | Q(ready_at__lte=now + statements.CLAIM_EARLY_TOLERANCE)
    if not NodeShard.objects.filter(due, pk=shard_id, state=NodeState.PENDING).update(
        state=NodeState.RUNNING, started_at=now, heartbeat_at=now
    ):
        _send_again_if_early(shard_id, now)
        return
    shard = NodeShard.objects.get(pk=shard_id)
    node_run = NodeRun.objects.filter(pk=shard.node_run_id, state=NodeState.WAITING, attempt=shard.node_attempt).first()
    if node_run is None:  # the node was cancelled or failed meanwhile
        _finish_shard(shard, state=NodeState.CANCELLED)
        return
    run = runtime.run_for(node_run.run_id)
    plan = runtime.plan_for(run)
    node = plan.nodes[node_run.node_key]
    try:
        context = execution.build_context(run, plan, node, node_run)
    except ExpressionError as exc:
        _shard_failed(run, plan, node, node_run, shard, f"config: {exc}", retry=False)
        return
    context.inputs = {f"shard-{number:05d}": {"manifest": manifest} for number, manifest in enumerate(shard.input)}
    context.shard = {
        "stage": shard.stage,
        "index": shard.index,
        "of": shard.of,
        "attempt": shard.attempt,
        # Stage 0 reads one slice: how many records of the node's input come before it.
        "offset": shard.input[0].get("offset", 0) if shard.stage == 0 else 0,
    }
    context.shard_row = shard
    try:
        with execution.heartbeat(shard), execution.time_limit(node.settings.get("timeout_seconds")):
            result = node.node_type.execute(context)
    except execution.NodeCancelled:
        return
    except execution.NodeTimedOut:
        _shard_failed(run, plan, node, node_run, shard, f"timed out after {node.settings['timeout_seconds']:g} s")
        return
    except (NodeFailed, ExpressionError) as exc:
        _shard_failed(run, plan, node, node_run, shard, str(exc))
        return
    except Exception as exc:  # an executor's bug fails the shard, not the worker
        _shard_failed(run, plan, node, node_run, shard, f"{type(exc).__name__}: {exc}")
        return
    if not _finish_shard(
        shard,
        state=NodeState.SUCCEEDED,
        output=result.output,
        progress=1.0,
        records_in=result.records_in if result.records_in is not None else shard.records_in,
        records_out=result.records_out if result.records_out is not None else shard.records_out,
    ):
        _discard_artifacts(result.output)  # cancelled while it ran: nobody will read them
        return
    stage_finished(run, plan, node, node_run, shard.stage)


def _send_again_if_early(shard_id: int, now) -> None:
    """A shard message that came before the shard's retry was due (a redelivery): send it
    again for then, in case it is the only one left (its worker died holding the other)."""
    early = NodeShard.objects.filter(pk=shard_id, state=NodeState.PENDING, ready_at__gt=now).first()
    if early is not None:
        enqueue([shard_id], countdown=(early.ready_at - now).total_seconds())


def _finish_shard(shard: NodeShard, **changes: Any) -> bool:
    return bool(
        NodeShard.objects.filter(pk=shard.pk, state=NodeState.RUNNING, attempt=shard.attempt).update(
            finished_at=timezone.now(), heartbeat_at=None, **changes
        )
    )


def report_progress(context, fraction: float | None, records_in: int | None, records_out: int | None) -> bool:
    """A shard's progress, stored on its row and summed onto the node run (which publishes
    it). False if the shard was cancelled."""
    shard: NodeShard = context.shard_row
    changes = runtime.progress_changes(fraction, records_in, records_out)
    if not NodeShard.objects.filter(pk=shard.pk, state=NodeState.RUNNING, attempt=shard.attempt).update(**changes):
        return False
    _publish_node_progress(context.node_run, shard.stage)
    return True


def _publish_node_progress(node_run: NodeRun, stage: int) -> None:
    node = runtime.plan_for(runtime.run_for(node_run.run_id)).nodes[node_run.node_key]
    stages = node.node_type.shard_stages(node.config)
    shards = NodeShard.objects.filter(node_run_id=node_run.pk, node_attempt=node_run.attempt)
    current = shards.filter(stage=stage).aggregate(progress=Avg("progress"), records_out=Sum("records_out"))
    records_in = shards.filter(stage=0).aggregate(total=Sum("records_in"))["total"]
    runtime.transition(
        node_run,
        [NodeState.WAITING],
        progress=min(1.0, (stage + (current["progress"] or 0.0)) / max(stages, stage + 1)),
        records_in=records_in,
        records_out=current["records_out"] if stage == stages - 1 else node_run.records_out,
    )


def _shard_failed(
    run: Run, plan: Plan, node: PlanNode, node_run: NodeRun, shard: NodeShard, message: str, *, retry: bool = True
) -> bool:
    """Retry the shard while the node's retries allow; then fail the node and stop its shards.
    False if this attempt of the shard had already ended (cancelled, or given up as overdue)."""
    label = f"shard {shard.index + 1}/{shard.of}" + (f" of stage {shard.stage + 1}" if shard.stage else "")
    retries = int(node.settings.get("retries", 0))
    if retry and shard.attempt <= retries:
        delay = runtime.retry_delay(node, shard.attempt)
        if not NodeShard.objects.filter(pk=shard.pk, state=NodeState.RUNNING, attempt=shard.attempt).update(
            state=NodeState.PENDING,
            attempt=shard.attempt + 1,
            error=message[:10000],
            ready_at=timezone.now() + timedelta(seconds=delay),
            heartbeat_at=None,
        ):
            return False
        runtime.write_log(
            node_run, f"{label}: attempt {shard.attempt} failed: {message}; retrying in {delay:g} s", "warning"
        )
        enqueue([shard.pk], countdown=delay)
        return True
    if not _finish_shard(shard, state=NodeState.FAILED, error=message[:10000]):
        return False
    stop_shards(node_run)
    runtime.fail(run, plan, node_run, f"{label}: {message}", retry=False)
    return True


def stop_shards(node_run: NodeRun) -> None:
    """Cancel the unfinished shards of a node run: queued ones never start, running ones stop
    at their next progress check."""
    NodeShard.objects.filter(node_run_id=node_run.pk, state__in=UNFINISHED).update(
        state=NodeState.CANCELLED, finished_at=timezone.now(), heartbeat_at=None
    )


def cancel_for_run(run: Run) -> list[str]:
    """Cancel the unfinished shards of a run; returns the task ids of queued ones (to revoke)."""
    unfinished = NodeShard.objects.filter(node_run__run_id=run.pk, state__in=UNFINISHED)
    queued = [task_id(pk) for pk in unfinished.filter(state=NodeState.PENDING).values_list("pk", flat=True)]
    unfinished.update(state=NodeState.CANCELLED, finished_at=timezone.now(), heartbeat_at=None)
    return queued


# --- stages and the merge -----------------------------------------------------------


def stage_finished(run: Run, plan: Plan, node: PlanNode, node_run: NodeRun, stage: int) -> None:
    """After a shard of `stage` succeeded: if it was the stage's last, start the next stage or
    merge. Of shards finishing together, the conditional update lets exactly one go on."""
    shards = NodeShard.objects.filter(node_run_id=node_run.pk, node_attempt=node_run.attempt)
    if shards.filter(stage=stage).exclude(state=NodeState.SUCCEEDED).exists():
        _publish_node_progress(node_run, stage)
        return
    outputs = [
        list(shards.filter(stage=number).order_by("index").values_list("output", flat=True))
        for number in range(stage + 1)
    ]
    last = outputs[-1]
    with transaction.atomic():  # the claim and the next stage's shards commit together
        if not NodeRun.objects.filter(
            pk=node_run.pk, state=NodeState.WAITING, attempt=node_run.attempt, shard_stage=stage
        ).update(shard_stage=stage + 1):
            return
        node_run.shard_stage = stage + 1
        if all("partitions" in output for output in last):
            width = len(last[0]["partitions"])
            inputs = [[output["partitions"][j] for output in last] for j in range(width)]
            runtime.write_log(node_run, f"stage {stage + 2}: {width} shards by key")
            _create_stage(node_run, stage + 1, inputs)
            return
    _merge(run, plan, node, node_run, outputs)


def _merge(run: Run, plan: Plan, node: PlanNode, node_run: NodeRun, outputs: list[list[dict[str, Any]]]) -> None:
    from datasets import records
    from pipelines.engine import execution

    final = outputs[-1]
    manifest = records.concat(
        [output["manifest"] for output in final], prefix=f"artifacts/run-{run.pk}/{node_run.node_key}"
    )
    records_in = NodeShard.objects.filter(node_run_id=node_run.pk, node_attempt=node_run.attempt, stage=0).aggregate(
        total=Sum("records_in")
    )["total"]
    try:
        extra = node.node_type.merge_shards(outputs)
    except Exception as exc:  # a type's merge bug fails the node, like an executor's
        runtime.fail(run, plan, node_run, f"merging shards: {type(exc).__name__}: {exc}", retry=False)
        return
    result: NodeResult = data.result(manifest, records_in=records_in, **extra)
    for earlier in outputs[:-1]:  # the partitions between stages were read by the next stage
        for output in earlier:
            _discard_artifacts(output)
    runtime.write_log(node_run, f"merged {len(final)} shards: {manifest['count']} records")
    if node.settings.get("cache"):
        context = execution.build_context(run, plan, node, node_run)
        cache.store(cache.cache_key(node, context), node, node_run, result)
    runtime.succeed(run, plan, node_run, result)


def _discard_artifacts(output: dict[str, Any] | None) -> None:
    from datasets import records

    if not isinstance(output, dict):
        return
    for manifest in output.get("partitions", []) + ([output["manifest"]] if "manifest" in output else []):
        records.delete_parts(manifest)


# --- the sweeper's part -------------------------------------------------------------

#: A shard re-queued after lost workers more often than this fails its node instead.
MAX_LOST_WORKER_ATTEMPTS = 5


def sweep(now, stale) -> dict[str, int]:
    counts = {"shards_requeued": 0, "shards_reenqueued": 0}
    for shard in NodeShard.objects.filter(state=NodeState.RUNNING, heartbeat_at__lt=stale):
        node_run = NodeRun.objects.filter(pk=shard.node_run_id).first()
        if shard.attempt >= MAX_LOST_WORKER_ATTEMPTS + 1 and node_run is not None:
            run = runtime.run_for(node_run.run_id)
            plan = runtime.plan_for(run)
            _shard_failed(run, plan, plan.nodes[node_run.node_key], node_run, shard, "worker lost", retry=False)
            continue
        if NodeShard.objects.filter(pk=shard.pk, state=NodeState.RUNNING, attempt=shard.attempt).update(
            state=NodeState.PENDING, attempt=shard.attempt + 1, ready_at=now, heartbeat_at=None
        ):
            if node_run is not None:
                runtime.write_log(
                    node_run, f"shard {shard.index + 1}/{shard.of}: worker lost; attempt {shard.attempt + 1}", "warning"
                )
            enqueue([shard.pk])
            counts["shards_requeued"] += 1
    lost = list(NodeShard.objects.filter(state=NodeState.PENDING, ready_at__lt=stale).values_list("pk", flat=True))
    if lost:
        NodeShard.objects.filter(pk__in=lost, state=NodeState.PENDING).update(ready_at=now)
        enqueue(lost)
        counts["shards_reenqueued"] = len(lost)
    counts["shard_merges_resumed"] = _resume_stalled_merges(stale)
    return counts


def fail_overdue(stale) -> int:
    """Fail shards running a stale-time past their node's timeout (see sweeper.fail_overdue)."""
    failed = 0
    running = NodeShard.objects.filter(
        state=NodeState.RUNNING,
        started_at__lt=stale,
        node_run__state=NodeState.WAITING,
        node_run__attempt=F("node_attempt"),
    )
    for shard in running.select_related("node_run__run__pipeline").defer("node_run__run__spec"):
        node_run = shard.node_run
        plan = runtime.plan_for(node_run.run)
        node = plan.nodes[node_run.node_key]
        timeout = runtime.overdue_timeout(node, shard.started_at, stale)
        if timeout and _shard_failed(node_run.run, plan, node, node_run, shard, runtime.overdue_message(timeout)):
            failed += 1
    return failed


def _resume_stalled_merges(stale) -> int:
    """A node whose shards all succeeded long ago but which is still waiting: the worker that
    was to start the next stage or merge died first. Go on from its last complete stage."""
    shards = NodeShard.objects.filter(node_run=OuterRef("pk"), node_attempt=OuterRef("attempt"))
    stalled = (
        NodeRun.objects.filter(state=NodeState.WAITING, shard_stage__isnull=False)
        .filter(Exists(shards))
        # Still under way, or finished too recently to tell from a live merge: not stalled.
        .exclude(Exists(shards.exclude(state=NodeState.SUCCEEDED)))
        .exclude(Exists(shards.filter(finished_at__gte=stale)))
        .annotate(last_stage=Subquery(shards.order_by("-stage").values("stage")[:1]))
    )
    resumed = 0
    for node_run in stalled:
        stage = node_run.last_stage
        # A merge claimed but not finished moved shard_stage past the last stage: step back.
        NodeRun.objects.filter(pk=node_run.pk, state=NodeState.WAITING, shard_stage=stage + 1).update(shard_stage=stage)
        node_run.shard_stage = stage
        run = runtime.run_for(node_run.run_id)
        plan = runtime.plan_for(run)
        runtime.write_log(node_run, "resuming the merge of its shards (its worker was lost)", "warning")
        stage_finished(run, plan, plan.nodes[node_run.node_key], node_run, stage)
        resumed += 1
    return resumed
