"""A node type for engine tests: sleeps, fails, logs, reports progress and leaves markers,
as the test's config says. Registered in the test process and its worker processes
through DATAMATE_NODE_TYPE_MODULES (see tests/suite_environment.py)."""

import os
from pathlib import Path
import time

from nodes.execution import NodeFailed, NodeResult
from nodes.registry import NodeType, register

#: The environment variable TestStep's executor_version is read from, at import.
EXECUTOR_VERSION_ENV = "DATAMATE_TEST_STEP_EXECUTOR_VERSION"


def wait_for_file(ctx, path: Path, timeout: float = 60) -> None:
    """Keep the node running until the test creates `path`, so a test can look at it
    mid-run. ctx.progress raises if the run is cancelled; the timeout frees the worker
    should a test never release it."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise NodeFailed(f"{path} did not appear within {timeout} s")
        ctx.progress(None)
        time.sleep(0.02)


@register
class TestStep(NodeType):
    key = "test_step"
    category = "data"
    label = "Test step"
    description = "Engine test double: configurable sleep, failures, logs, progress and markers."
    #: Set in a worker's environment to deploy a "new executor" (tests/engine/test_cache_scope.py).
    executor_version = os.environ.get(EXECUTOR_VERSION_ENV, "1")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "sleep": {"type": "number", "minimum": 0},
            "fail_times": {"type": "integer", "minimum": 0},
            "fail_always": {"type": "boolean"},
            "marker_file": {"type": "string"},
            "log": {"type": "string"},
            "progress_steps": {"type": "integer", "minimum": 0},
            "wait_for_file": {"type": "string"},
            "value": {},
            "handles": {"type": "array", "items": {"type": "string"}},
        },
    }

    @classmethod
    def output_handles(cls, config):
        return ["out", "a", "b", "error"]

    @classmethod
    def execute(cls, ctx):
        config = ctx.config
        if config.get("log"):
            ctx.log(config["log"])
        steps = config.get("progress_steps", 0)
        for step in range(steps):
            time.sleep(config.get("sleep", 0) / steps)
            ctx.progress((step + 1) / steps, records_out=step + 1)
        if not steps and config.get("sleep"):
            time.sleep(config["sleep"])
        if config.get("wait_for_file"):
            wait_for_file(ctx, Path(config["wait_for_file"]))
        if config.get("fail_always") or ctx.attempt <= config.get("fail_times", 0):
            raise NodeFailed(f"planned failure on attempt {ctx.attempt}")
        if config.get("marker_file"):
            with Path(config["marker_file"]).open("a") as marker:
                marker.write(f"{ctx.run_id}|{ctx.node_key}|{(ctx.loop or {}).get('index', '')}|{ctx.attempt}\n")
        output = {
            "attempt": ctx.attempt,
            "inputs": sorted(ctx.inputs),
            "input_values": {key: value.get("value") for key, value in ctx.inputs.items()},
            "value": config.get("value"),
        }
        if ctx.loop is not None:
            output["loop_index"] = ctx.loop["index"]
            output["loop_item"] = ctx.loop["item"]
            output["previous"] = {key: (value or {}).get("value") for key, value in ctx.loop["previous"].items()}
        return NodeResult(output=output, handles=config.get("handles", ["out"]))


@register
class TestShardedCopy(NodeType):
    """Copies its input records, adding which shard (and attempt) handled each; shardable."""

    key = "test_sharded_copy"
    category = "data"
    label = "Test sharded copy"
    description = "Engine test double: copies records, tagging each with its shard."
    needs_input = True
    shardable = True
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "shards": {},
            "sleep": {"type": "number", "minimum": 0},
            "fail_on_id": {"type": "integer"},
            "fail_times": {"type": "integer", "minimum": 0},
            "report_progress": {"type": "boolean"},
        },
    }

    @classmethod
    def execute(cls, ctx):
        from nodes import data

        config = ctx.config
        shard = ctx.shard or {"index": None, "attempt": ctx.attempt}
        manifests = data.require_input(ctx)

        def copied():
            for batch in data.read_inputs(ctx, manifests):
                ids = {record.get("id") for record in batch}
                if config.get("fail_on_id") in ids and shard["attempt"] <= config.get("fail_times", 10**6):
                    raise NodeFailed(f"planned failure on record {config['fail_on_id']}")
                for _ in range(20):
                    time.sleep(config.get("sleep", 0) / 20)
                    if config.get("report_progress", True):
                        ctx.progress(None)
                yield [{**record, "shard": shard["index"], "shard_attempt": shard["attempt"]} for record in batch]

        manifest = data.write_artifact(ctx, copied())
        return data.result(manifest, records_in=data.count_of(manifests), copies=manifest["count"], tag="same")
