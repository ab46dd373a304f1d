"""Loops in every mode, waits, sub-pipelines and parallel branches on real workers."""

import os
import socket

from pipelines import services
from pipelines.engine.runs import start_run
from pipelines.models import NodeRun
from tests.engine import workers
from tests.engine.conftest import node_states, outputs, wait_for_run
from tests.engine.test_basic_runs import edge, step
from tests.factories import create_pipeline


def loop_doc(loop_config, body=None, body_edges=None, parameters=None):
    body = body or [
        {**step("first", value="{{ loop.index }}"), "parent": "repeat"},
        {**step("second", value="{{ loop.item }}"), "parent": "repeat"},
    ]
    return {
        "name": "loop",
        "parameters": parameters or [],
        "nodes": [step("before", value="seed"), {"key": "repeat", "type": "loop", "config": loop_config}, *body,
                  step("after")],
        "edges": [edge("before", "repeat"), edge("repeat", "after"),
                  *(body_edges if body_edges is not None else [edge("first", "second")])],
    }  # fmt: skip


def test_count_loop_runs_the_body_per_iteration_with_paths(engine, alice):
    doc = loop_doc(
        {"mode": "count", "count": "{{ params.rounds }}"},
        parameters=[{"name": "rounds", "type": "integer", "default": 3}],
    )
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded", run.error
    for index in range(3):
        path = f"repeat:{index}"
        assert node_states(run, path) == {"first": "succeeded", "second": "succeeded"}
        body = outputs(run, path)
        assert body["first"]["value"] == index
        assert body["first"]["loop_index"] == index
        # The first body node gets the Loop's input; later iterations see the previous one.
        assert body["first"]["input_values"] == {"before": "seed"}
        assert body["second"]["previous"] == ({} if index == 0 else {"first": index - 1, "second": None})
    loop = outputs(run)["repeat"]
    assert loop["iterations"] == 3
    assert [r["second"]["input_values"] for r in loop["results"]] == [{"first": 0}, {"first": 1}, {"first": 2}]
    assert node_states(run)["after"] == "succeeded"
    assert NodeRun.objects.filter(run=run).count() == 3 + 3 * 2


def test_for_each_loop_gives_each_item(engine, alice):
    doc = loop_doc({"mode": "for_each", "items": ["red", "green", "blue"]})
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded", run.error
    assert [outputs(run, f"repeat:{i}")["second"]["value"] for i in range(3)] == ["red", "green", "blue"]


def test_while_loop_reevaluates_its_condition_and_stops(engine, alice):
    # Keep going while the previous iteration's `first` value was below 2: iterations 0, 1, 2.
    doc = loop_doc(
        {"mode": "while", "condition": "loop.index == 0 or loop.previous.first.value < 2", "max_iterations": 10},
    )
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded", run.error
    assert outputs(run)["repeat"]["iterations"] == 3
    assert outputs(run)["repeat"]["stopped_by_guard"] is False


def test_while_loop_stops_at_its_guard(engine, alice):
    doc = loop_doc({"mode": "while", "condition": "true", "max_iterations": 4})
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded"
    assert outputs(run)["repeat"] == {**outputs(run)["repeat"], "iterations": 4, "stopped_by_guard": True}


def test_nested_loops(engine, alice):
    doc = {
        "name": "nested",
        "nodes": [
            {"key": "outer", "type": "loop", "config": {"mode": "count", "count": 2}},
            {"key": "inner", "type": "loop", "config": {"mode": "count", "count": 3}, "parent": "outer"},
            {**step("leaf", value="{{ loop.index }}"), "parent": "inner"},
        ],
        "edges": [],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded", run.error
    leaves = NodeRun.objects.filter(run=run, node_key="leaf").order_by("iteration")
    assert [row.iteration for row in leaves] == [f"outer:{o}/inner:{i}" for o in range(2) for i in range(3)]
    assert all(row.state == "succeeded" for row in leaves)


def test_failing_body_fails_the_loop_and_the_run(engine, alice):
    doc = loop_doc(
        {"mode": "count", "count": 3},
        body=[{**step("first", fail_always=True), "parent": "repeat"}],
        body_edges=[],
    )
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "failed"
    states = node_states(run)
    assert (states["repeat"], states["after"]) == ("failed", "skipped")
    assert "iteration 0 failed: first: planned failure" in NodeRun.objects.get(run=run, node_key="repeat").error


def test_parallel_branches_join(engine, alice):
    doc = {
        "name": "parallel",
        "nodes": [
            {"key": "split", "type": "parallel", "config": {"branches": 3}},
            *(step(f"branch{i}", value=i, sleep=0.3) for i in (1, 2, 3)),
            step("join"),
        ],
        "edges": [edge("split", f"branch{i}", f"branch-{i}") for i in (1, 2, 3)]
        + [edge(f"branch{i}", "join") for i in (1, 2, 3)],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded"
    assert outputs(run)["join"]["input_values"] == {"branch1": 1, "branch2": 2, "branch3": 3}


def test_parallel_branches_run_at_once_on_two_worker_instances(engine, processes, alice):
    """Two workers of one pool process each, as two machines would be: each runs a branch."""
    engine.stop()  # the two-process worker: the engine fixture starts it again for the next test
    pair = []
    try:
        pair.extend(workers.start_worker(processes.log_dir, name=f"single{i}", concurrency=1) for i in (1, 2))
        doc = {
            "name": "parallel on two workers",
            "nodes": [
                {"key": "split", "type": "parallel", "config": {"branches": 2}},
                *(step(f"branch{i}", value=i, sleep=1.5) for i in (1, 2)),
                step("join"),
            ],
            "edges": [edge("split", f"branch{i}", f"branch-{i}") for i in (1, 2)]
            + [edge(f"branch{i}", "join") for i in (1, 2)],
        }
        run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    finally:
        for worker in pair:
            worker.stop()
    assert run.state == "succeeded", run.error
    rows = {row.node_key: row for row in NodeRun.objects.filter(run=run)}
    first, second = rows["branch1"], rows["branch2"]
    assert {first.worker.partition(" pid")[0], second.worker.partition(" pid")[0]} == {
        f"single{i}-{os.getpid()}@{socket.gethostname()}" for i in (1, 2)
    }
    assert first.started_at < second.finished_at and second.started_at < first.finished_at  # at once
    assert rows["join"].started_at >= max(first.finished_at, second.finished_at)
    assert outputs(run)["join"]["input_values"] == {"branch1": 1, "branch2": 2}


def test_sub_pipeline_runs_as_a_child_and_returns_its_outputs(engine, alice):
    child = create_pipeline(
        alice,
        {
            "name": "child",
            "parameters": [{"name": "word", "type": "string", "required": True}],
            "nodes": [step("shout", value="{{ params.word | upper }}")],
        },
    )
    parent = create_pipeline(
        alice,
        {
            "name": "parent",
            "nodes": [
                {"key": "call", "type": "subpipeline", "config": {"pipeline": child.pk, "parameters": {"word": "hi"}}},
                step("use", value="{{ nodes.call.output.outputs.shout.value }}"),
            ],
            "edges": [edge("call", "use")],
        },
    )
    run = wait_for_run(start_run(parent, user=alice))
    assert run.state == "succeeded", run.error
    child_run = child.runs.get()
    assert (child_run.trigger, child_run.state, child_run.params) == ("subpipeline", "succeeded", {"word": "hi"})
    assert child_run.parent_node_run.run_id == run.pk
    assert outputs(run)["use"]["value"] == "HI"


def test_sub_pipeline_pinned_to_a_version_runs_that_version(engine, alice):
    child = create_pipeline(alice, {"name": "child", "nodes": [step("emit", value="from v1")]})
    services.save_graph(child, {"name": "child", "nodes": [step("emit", value="from v2")]}, author=alice)
    assert child.version == 2
    parent = create_pipeline(
        alice,
        {
            "name": "parent",
            "nodes": [
                {"key": "pinned", "type": "subpipeline", "config": {"pipeline": child.pk, "version": 1}},
                {"key": "latest", "type": "subpipeline", "config": {"pipeline": child.pk, "version": "latest"}},
            ],
        },
    )
    run = wait_for_run(start_run(parent, user=alice))
    assert run.state == "succeeded", run.error
    children = {row.parent_node_run.node_key: row for row in child.runs.select_related("parent_node_run")}
    assert {key: (row.version, row.state) for key, row in children.items()} == {
        "pinned": (1, "succeeded"),
        "latest": (2, "succeeded"),
    }
    assert outputs(run)["pinned"]["run"] == children["pinned"].pk
    assert outputs(run)["pinned"]["outputs"]["emit"]["value"] == "from v1"
    assert outputs(run)["latest"]["outputs"]["emit"]["value"] == "from v2"


def test_sub_pipeline_child_failure_fails_the_node(engine, alice):
    child = create_pipeline(alice, {"name": "child", "nodes": [step("boom", fail_always=True)]})
    parent = create_pipeline(
        alice,
        {"name": "parent", "nodes": [{"key": "call", "type": "subpipeline", "config": {"pipeline": child.pk}}]},
    )
    run = wait_for_run(start_run(parent, user=alice))
    assert run.state == "failed"
    assert "child run" in run.error and "planned failure" in run.error


def test_a_template_that_renders_to_the_wrong_type_fails_the_node_naming_the_field(engine, alice):
    """The designer lets a whole `{{ }}` value pass whatever the field's type; the run checks
    what it rendered to before the executor sees it."""
    doc = {
        "name": "bad wait",
        "parameters": [{"name": "delay", "type": "string", "default": "soon"}],
        "nodes": [step("before"), step("after"),
                  {"key": "pause", "type": "wait", "config": {"duration_seconds": "{{ params.delay }}"}}],
        "edges": [edge("before", "pause"), edge("pause", "after")],
    }  # fmt: skip
    pipeline = create_pipeline(alice, doc)
    run = wait_for_run(start_run(pipeline, user=alice))
    assert run.state == "failed"
    assert run.error == "pause: config: duration_seconds: 'soon' is not of type 'number'"
    assert node_states(run) == {"before": "succeeded", "pause": "failed", "after": "skipped"}
    assert NodeRun.objects.get(run=run, node_key="pause").attempt == 1  # no retry: it would render the same
    doc["parameters"] = [{"name": "delay", "type": "number", "default": 0.2}]
    run = wait_for_run(start_run(create_pipeline(alice, doc, name="good wait"), user=alice))
    assert run.state == "succeeded", run.error
