"""The benchmark's node type: `noop` does nothing and returns a small dict, so a run of
noop nodes times only the engine's orchestration.

Registered through DATAMATE_NODE_TYPE_MODULES=bench.node_types in the benchmark process
and its worker (bench/engine_overhead.py sets it for both).
"""

from nodes.execution import NodeResult
from nodes.registry import NodeType, register


@register
class Noop(NodeType):
    key = "noop"
    category = "data"
    label = "No-op"
    description = "Benchmark double: returns a small dict and does nothing else."
    config_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    @classmethod
    def execute(cls, ctx):
        return NodeResult(output={"ok": True, "inputs": len(ctx.inputs)})
