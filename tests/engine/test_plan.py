"""The engine's decisions as pure functions: no database, no worker."""

import pytest

from pipelines.engine.plan import READY, SKIP, WAIT, Plan, decide, initial_states
from pipelines.engine.states import NodeState, state_version
from tests.factories import example_document

OK, FAILED, RUNNING, SKIPPED = NodeState.SUCCEEDED, NodeState.FAILED, NodeState.RUNNING, NodeState.SKIPPED


@pytest.mark.parametrize(
    ("join", "inputs", "expected"),
    [
        ("all", [(OK, ["out"], "out"), (RUNNING, None, "out")], WAIT),
        ("all", [(OK, ["out"], "out"), (SKIPPED, [], "out")], READY),
        ("all", [(SKIPPED, [], "out"), (SKIPPED, [], "out")], SKIP),
        ("all", [(OK, ["true"], "false")], SKIP),
        ("all", [(OK, ["true"], "true")], READY),
        ("all", [(FAILED, [], "out"), (OK, ["out"], "out")], READY),
        ("all", [(FAILED, ["error"], "error")], READY),
        ("all", [(FAILED, ["error"], "out")], SKIP),
        ("any", [(OK, ["out"], "out"), (RUNNING, None, "out")], READY),
        ("any", [(SKIPPED, [], "out"), (RUNNING, None, "out")], WAIT),
        ("any", [(SKIPPED, [], "out"), (FAILED, [], "out")], SKIP),
        ("none_failed", [(FAILED, [], "out"), (OK, ["out"], "out")], SKIP),
        ("none_failed", [(FAILED, ["error"], "error"), (SKIPPED, [], "out")], READY),
        ("none_failed", [(OK, ["out"], "out"), (RUNNING, None, "out")], WAIT),
    ],
)
def test_decide(join, inputs, expected):
    assert decide(join, inputs) == expected


def test_plan_of_the_example():
    plan = Plan.from_spec(example_document())
    assert plan.roots(None) == ["input"]
    assert sorted(plan.sinks(None)) == ["save_annotated", "save_synthesized"]
    assert sorted(plan.successors("enough")) == [
        "annotate",
        "synthesize",
    ]
    assert plan.with_downstream({"enough"}) == {
        "enough", "annotate", "save_annotated", "synthesize", "save_synthesized"
    }  # fmt: skip
    assert plan.nodes["enough"].referenced_nodes == {"clean"}


def test_initial_states_for_a_fresh_run_and_a_rerun():
    plan = Plan.from_spec(example_document())
    fresh = initial_states(plan, None, {})
    assert fresh["input"] == NodeState.READY
    assert {key for key, state in fresh.items() if state == NodeState.PENDING} == set(plan.nodes) - {"input"}
    # A re-run that keeps input, clean and the condition (which chose `true`).
    kept = {"input": (OK, ["out"]), "clean": (OK, ["out"]), "enough": (OK, ["true"])}
    rerun = initial_states(plan, None, kept)
    assert rerun == {
        "annotate": NodeState.READY,
        "synthesize": NodeState.SKIPPED,
        "save_annotated": NodeState.PENDING,
        "save_synthesized": NodeState.SKIPPED,
    }


def test_state_versions_grow_with_every_transition():
    path = [
        state_version(NodeState.PENDING, 1),
        state_version(NodeState.READY, 1),
        state_version(NodeState.RUNNING, 1),
        state_version(NodeState.READY, 2),  # a retry
        state_version(NodeState.RUNNING, 2),
        state_version(NodeState.SUCCEEDED, 2),
    ]
    assert path == sorted(path) and len(set(path)) == len(path)
