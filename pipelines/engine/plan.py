"""The frozen spec of a run as a graph, and the pure decisions made over it.

Nothing here touches the database or Celery, so the rules (what becomes ready, what is
skipped, when a scope is complete) are unit-tested on their own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from nodes import registry
from nodes.expressions import expression_references, has_template, template_references
from pipelines.engine.states import NodeState


@dataclass
class PlanNode:
    key: str
    type: str
    config: dict[str, Any]
    settings: dict[str, Any]
    parent: str | None
    label: str = ""
    #: Keys of nodes whose outputs its config or expressions mention (`nodes.<key>`).
    referenced_nodes: frozenset[str] = frozenset()

    @cached_property
    def node_type(self) -> type[registry.NodeType]:
        return registry.get(self.type)

    @property
    def join(self) -> str:
        return self.settings.get("join", "all")


@dataclass
class Plan:
    nodes: dict[str, PlanNode]
    #: target key -> [(source key, source handle)]
    incoming: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    #: source key -> [(source handle, target key)]
    outgoing: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    #: container key (None = top level) -> keys of the nodes directly inside it
    children: dict[str | None, list[str]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Plan:
        nodes = {}
        for raw in spec["nodes"]:
            node_type = registry.get(raw["type"])
            refs: set[str] = set()
            for name, value in _strings(raw["config"]):
                if name in node_type.expression_fields:
                    refs |= expression_references(value).nodes
                elif has_template(value):
                    refs |= template_references(value).nodes
            nodes[raw["key"]] = PlanNode(
                key=raw["key"],
                type=raw["type"],
                config=raw["config"],
                settings=raw.get("settings", {}),
                parent=raw.get("parent"),
                label=raw.get("label", ""),
                referenced_nodes=frozenset(refs),
            )
        plan = cls(nodes)
        for edge in spec["edges"]:
            plan.incoming[edge["target"]].append((edge["source"], edge["source_handle"]))
            plan.outgoing[edge["source"]].append((edge["source_handle"], edge["target"]))
        for node in nodes.values():
            plan.children[node.parent].append(node.key)
        return plan

    def successors(self, key: str) -> list[str]:
        seen: dict[str, None] = {}
        for _, target in self.outgoing.get(key, ()):
            seen.setdefault(target)
        return list(seen)

    def predecessors(self, key: str) -> list[str]:
        return [source for source, _ in self.incoming.get(key, ())]

    def roots(self, container: str | None) -> list[str]:
        """Nodes of a scope (top level or a Loop body) that nothing inside it feeds."""
        return [key for key in self.children.get(container, ()) if not self.incoming.get(key)]

    def sinks(self, container: str | None) -> list[str]:
        return [key for key in self.children.get(container, ()) if not self.outgoing.get(key)]

    def with_downstream(self, keys: set[str]) -> set[str]:
        """`keys` and every node a path leads to from them (within their scope)."""
        found = set(keys)
        stack = list(keys)
        while stack:
            for target in self.successors(stack.pop()):
                if target not in found:
                    found.add(target)
                    stack.append(target)
        return found


def _strings(value: Any, top: str | None = None) -> Iterable[tuple[str | None, str]]:
    """(top-level config field, string) for every string inside a config."""
    if isinstance(value, str):
        yield top, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, name if top is None else top)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, top)


# --- decisions ----------------------------------------------------------------------

WAIT, READY, SKIP = "wait", "ready", "skip"


def edge_state(source_state: str, source_handles: list[str] | None, handle: str) -> bool | None:
    """None while the source runs; then True if this edge carries on, False if it is dead."""
    if source_state not in NodeState.FINISHED:
        return None
    return source_state in (NodeState.SUCCEEDED, NodeState.CACHED, NodeState.FAILED) and handle in (
        source_handles or ()
    )


def failed_unhandled(source_state: str, source_handles: list[str] | None) -> bool:
    return source_state == NodeState.FAILED and "error" not in (source_handles or ())


def decide(join: str, inputs: list[tuple[str, list[str] | None, str]]) -> str:
    """What a pending node does, given (source state, source live handles, edge handle) per input.

    - all: wait until every input is resolved; run if at least one is live, else skip.
    - any: run as soon as one input is live; skip once all are resolved and none is.
    - none_failed: like all, but skip if an upstream node failed and nothing handled it.
    """
    states = [edge_state(state, handles, handle) for state, handles, handle in inputs]
    if join == "any":
        if any(states):
            return READY
        return WAIT if None in states else SKIP
    if None in states:
        return WAIT
    if join == "none_failed" and any(failed_unhandled(state, handles) for state, handles, _ in inputs):
        return SKIP
    return READY if any(states) else SKIP


def topological_order(plan: Plan, container: str | None) -> list[str]:
    keys = plan.children.get(container, [])
    indegree = {key: len(plan.incoming.get(key, ())) for key in keys}
    ready = [key for key in keys if indegree[key] == 0]
    order = []
    while ready:
        key = ready.pop()
        order.append(key)
        for _, target in plan.outgoing.get(key, ()):
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    return order


def initial_states(
    plan: Plan, container: str | None, finished: dict[str, tuple[str, list[str] | None]]
) -> dict[str, str]:
    """States of a scope's not-yet-finished nodes when it starts, given those already
    finished (a re-run reuses them): ready where the inputs allow, skipped where they never
    will, else pending."""
    states: dict[str, str] = {}
    for key in topological_order(plan, container):
        if key in finished:
            continue
        inputs = []
        for source, handle in plan.incoming.get(key, ()):
            state, handles = finished.get(source) or (states[source], [])
            inputs.append((state, handles, handle))
        decision = decide(plan.nodes[key].join, inputs) if inputs else READY
        states[key] = {READY: NodeState.READY, SKIP: NodeState.SKIPPED}.get(decision, NodeState.PENDING)
    return states
