"""What a node type's `execute(ctx)` receives and returns.

The engine (pipelines/engine) builds the context; node types only see this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class NodeFailed(Exception):
    """An executor's way to fail with a clear message (no traceback in the log)."""


@dataclass
class ChildRunRequest:
    """Start another pipeline as a child run; its outputs become this node's output."""

    pipeline_id: int
    version: int | None
    params: dict[str, Any]


@dataclass
class NodeResult:
    output: dict[str, Any] = field(default_factory=dict)
    #: Source handles whose edges carry on. Default: the `out` handle.
    handles: list[str] = field(default_factory=lambda: ["out"])
    records_in: int | None = None
    records_out: int | None = None
    #: Finish later, at this time, without holding a worker (Wait).
    wait_until: datetime | None = None
    child_run: ChildRunRequest | None = None


class ExecutionContext(Protocol):
    run_id: int
    node_key: str
    attempt: int
    #: The node's config with every template resolved.
    config: dict[str, Any]
    params: dict[str, Any]
    #: Outputs of the direct upstream nodes whose edges are live, by node key.
    inputs: dict[str, dict[str, Any]]
    #: In a Loop body: {"index", "item", "previous"}; else None.
    loop: dict[str, Any] | None
    owner_id: int

    def log(self, message: str, level: str = "info") -> None: ...

    def progress(
        self, fraction: float | None = None, *, records_in: int | None = None, records_out: int | None = None
    ) -> None:
        """Report progress; raises if the run was cancelled, so long work stops here."""
