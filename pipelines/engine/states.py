"""Run and node-run states, their groups, and the order in which they can follow each other."""


class RunState:
    PENDING = "pending"  # created; roots not yet enqueued
    RUNNING = "running"  # at least one node run is not finished
    SUCCEEDED = "succeeded"  # every node run succeeded, was skipped, cached, or failed and was routed
    FAILED = "failed"  # a node run failed and nothing handled it
    CANCELLED = "cancelled"  # stopped on request

    CHOICES = [(s, s) for s in (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)]
    FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})
    ACTIVE = frozenset({PENDING, RUNNING})


class NodeState:
    PENDING = "pending"  # waiting for its upstream nodes
    READY = "ready"  # upstream resolved; enqueued for a worker
    RUNNING = "running"  # claimed by a worker, which heartbeats it
    WAITING = "waiting"  # no worker held: a timer, a Loop body or a child run is pending
    SUCCEEDED = "succeeded"
    CACHED = "cached"  # succeeded by reusing an identical earlier output
    FAILED = "failed"
    SKIPPED = "skipped"  # not on a live path (condition, upstream failure, join policy)
    CANCELLED = "cancelled"

    ALL = (PENDING, READY, RUNNING, WAITING, SUCCEEDED, CACHED, FAILED, SKIPPED, CANCELLED)
    CHOICES = [(s, s) for s in ALL]
    FINISHED = frozenset({SUCCEEDED, CACHED, FAILED, SKIPPED, CANCELLED})
    #: Finished with an output that flows downstream.
    DONE_OK = frozenset({SUCCEEDED, CACHED})
    UNFINISHED = frozenset({PENDING, READY, RUNNING, WAITING})
    #: What "re-run from failed" executes again when no node is chosen: the failures and
    #: what a failure or a cancel left unrun.
    RERUN_BY_DEFAULT = frozenset({FAILED, CANCELLED, PENDING})


_RANK = {
    NodeState.PENDING: 0,
    NodeState.READY: 1,
    NodeState.RUNNING: 2,
    NodeState.WAITING: 3,
}


def state_version(state: str, attempt: int) -> int:
    """A number that grows with every transition of one node run.

    Events from different workers may arrive out of order; a client keeps the newest
    state of each node run by this number (a retry starts a new attempt).
    """
    return attempt * 10 + _RANK.get(state, 9)
