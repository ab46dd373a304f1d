"""The opt-in result cache (`settings.cache` on a node).

A node's result is determined by its type, its resolved config, its inputs and the version
of its executor, so their hash is the key. A hit marks the node run `cached` and reuses the
stored output without executing anything.
"""

from __future__ import annotations

import contextlib
import hashlib

from django.db import IntegrityError
import orjson

from nodes.execution import NodeResult
from pipelines.engine.plan import PlanNode
from pipelines.models import NodeResultCache, NodeRun


def cache_key(node: PlanNode, context) -> str:
    """Keys are per owner: the same config names different things for different users (a
    dataset, a saved task), and one user's output must never reach another."""
    material = {
        "type": node.type,
        "executor_version": node.node_type.executor_version,
        "owner": context.owner_id,
        "config": context.config,
        "depends_on": node.node_type.cache_material(context),
        "inputs": context.inputs,
        "loop": context.loop and {"index": context.loop["index"], "item": context.loop["item"]},
    }
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def lookup(key: str) -> tuple[NodeResult, int | None] | None:
    entry = NodeResultCache.objects.filter(key=key).first()
    if entry is None:
        return None
    result = NodeResult(
        output=entry.output, handles=entry.handles, records_in=entry.records_in, records_out=entry.records_out
    )
    return result, entry.source_id


def withdraw(key: str, node_run: NodeRun) -> None:
    """Remove what `store` stored of this node run, if it stored it."""
    NodeResultCache.objects.filter(key=key, source=node_run).delete()


def store(key: str, node: PlanNode, node_run: NodeRun, result: NodeResult) -> None:
    with contextlib.suppress(IntegrityError):  # an identical execution stored it first
        NodeResultCache.objects.create(
            key=key,
            node_type=node.type,
            output=result.output,
            handles=result.handles,
            records_in=result.records_in,
            records_out=result.records_out,
            source=node_run,
        )
