"""Polling for a condition that another process makes true (a worker, beat, a server)."""

from __future__ import annotations

from collections.abc import Callable
import time
from typing import Any


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 20,
    what: str = "condition",
    *,
    every: float = 0.05,
    while_waiting: Callable[[], Any] | None = None,
) -> Any:
    """Poll until `predicate()` is truthy and return its value; fail naming `what`.
    `while_waiting` runs between polls (e.g. to keep a browser page's events flowing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        if while_waiting is not None:
            while_waiting()
        time.sleep(every)
