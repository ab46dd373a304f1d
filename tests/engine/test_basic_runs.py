"""Runs on real Celery workers: linear chains, fan-out and joins, conditions and skips."""

import itertools

import pytest

from pipelines import services
from pipelines.engine.runs import ParamsInvalid, start_run
from pipelines.models import NodeRun
from tests.engine.conftest import node_states, outputs, wait_for_run
from tests.factories import create_pipeline
from tests.waiting import wait_until


def step(key, **config):
    return {"key": key, "type": "test_step", "config": config}


def edge(source, target, handle="out"):
    return {"source": source, "source_handle": handle, "target": target}


def test_linear_chain_passes_outputs_downstream(engine, alice):
    keys = [f"s{i}" for i in range(6)]
    doc = {
        "name": "chain",
        "nodes": [step(k, value=i) for i, k in enumerate(keys)],
        "edges": [edge(a, b) for a, b in itertools.pairwise(keys)],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded", run.error
    assert set(node_states(run).values()) == {"succeeded"}
    out = outputs(run)
    assert out["s3"]["input_values"] == {"s2": 2}
    # Each node started only after its predecessor finished.
    rows = {r.node_key: r for r in NodeRun.objects.filter(run=run)}
    for a, b in itertools.pairwise(keys):
        assert rows[a].finished_at <= rows[b].started_at


def test_fan_out_and_join_all(engine, alice):
    doc = {
        "name": "fan",
        "nodes": [step("start"), *(step(f"b{i}", value=i, sleep=0.2) for i in range(4)), step("join")],
        "edges": [edge("start", f"b{i}") for i in range(4)] + [edge(f"b{i}", "join") for i in range(4)],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded", run.error
    join = outputs(run)["join"]
    assert join["input_values"] == {"b0": 0, "b1": 1, "b2": 2, "b3": 3}
    # Branches overlapped in time: two worker processes ran them concurrently.
    rows = {r.node_key: r for r in NodeRun.objects.filter(run=run, node_key__startswith="b")}
    assert rows["b0"].started_at < rows["b1"].finished_at and rows["b1"].started_at < rows["b0"].finished_at


def test_join_any_starts_on_the_first_input(engine, alice):
    doc = {
        "name": "any",
        "nodes": [
            step("fast", value="fast"),
            step("slow", sleep=2, value="slow"),
            {**step("first"), "settings": {"join": "any"}},
        ],
        "edges": [edge("fast", "first"), edge("slow", "first")],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded"
    rows = {r.node_key: r for r in NodeRun.objects.filter(run=run)}
    assert rows["first"].output["inputs"] == ["fast"]
    assert rows["first"].finished_at < rows["slow"].finished_at


@pytest.mark.parametrize(("threshold", "taken", "skipped"), [(1, "yes", "no"), (100, "no", "yes")])
def test_condition_takes_one_side_and_skips_the_other(engine, alice, threshold, taken, skipped):
    doc = {
        "name": "cond",
        "parameters": [{"name": "threshold", "type": "integer", "default": 10}],
        "nodes": [
            step("count", value=42),
            {
                "key": "check",
                "type": "condition",
                "config": {"expression": "nodes.count.output.value > params.threshold"},
            },
            step("yes"),
            step("yes_after"),
            step("no"),
            step("no_after"),
            step("merge"),
        ],
        "edges": [
            edge("count", "check"),
            edge("check", "yes", "true"),
            edge("yes", "yes_after"),
            edge("check", "no", "false"),
            edge("no", "no_after"),
            edge("yes_after", "merge"),
            edge("no_after", "merge"),
        ],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), {"threshold": threshold}, user=alice))
    assert run.state == "succeeded"
    states = node_states(run)
    assert states[taken] == states[f"{taken}_after"] == "succeeded"
    # Skips propagate down the untaken side, and the merge runs on the live side.
    assert states[skipped] == states[f"{skipped}_after"] == "skipped"
    assert states["merge"] == "succeeded"
    assert outputs(run)["merge"]["inputs"] == [f"{taken}_after"]


def test_parameters_are_checked_before_anything_is_written(engine, alice):
    doc = {
        "name": "params",
        "parameters": [
            {"name": "n", "type": "integer", "required": True},
            {"name": "corpus", "type": "dataset", "required": True},
        ],
        "nodes": [step("a")],
    }
    pipeline = create_pipeline(alice, doc)
    with pytest.raises(ParamsInvalid) as caught:
        start_run(pipeline, {"n": "three", "corpus": "nowhere", "extra": 1}, user=alice)
    assert caught.value.errors == [
        {"field": "params.extra", "message": "is not a parameter of this pipeline"},
        {"field": "params.n", "message": "must be an integer"},
        {"field": "params.corpus", "message": "no dataset named 'nowhere'"},
    ]
    assert not pipeline.runs.exists()


def test_roots_whose_batch_send_failed_are_sent_again_and_run_once(engine, alice, tmp_path, monkeypatch):
    """start_run sends its four roots in one batch; when kombu reports the batch's delivery
    uncertain (here: after it was delivered), each is sent again, and the duplicates that
    reach the worker claim nothing."""
    from kombu.exceptions import BatchPublishError
    from kombu.transport import redis as kombu_redis

    real_flush, failures = kombu_redis.PublishBatch.flush, []

    def flush_then_fail_once(batch):
        real_flush(batch)
        if not failures:
            failures.append(batch)
            raise BatchPublishError("Redis publish batch failed; delivery is uncertain")

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", flush_then_fail_once)
    marker = tmp_path / "marks.txt"
    doc = {"name": "roots", "nodes": [step(f"r{i}", marker_file=str(marker)) for i in range(4)], "edges": []}
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert failures, "the batch was not used"
    assert run.state == "succeeded", run.error
    executed = sorted(line.split("|")[1] for line in marker.read_text().splitlines())
    assert executed == ["r0", "r1", "r2", "r3"]


def test_a_run_keeps_the_version_it_started_with_while_the_pipeline_is_edited(engine, alice, tmp_path):
    gate = tmp_path / "gate"
    first = {
        "name": "edited",
        "nodes": [step("hold", wait_for_file=str(gate)), step("emit", value="as started")],
        "edges": [edge("hold", "emit")],
    }
    pipeline = create_pipeline(alice, first)
    run = start_run(pipeline, user=alice)
    holding = NodeRun.objects.filter(run=run, node_key="hold", state="running")
    wait_until(holding.exists, what="the first node to run")
    edited = {**first, "nodes": [step("hold"), step("emit", value="edited"), step("added")]}
    services.save_graph(pipeline, edited, author=alice)
    gate.touch()

    run = wait_for_run(run)
    assert run.state == "succeeded" and run.version == 1
    assert outputs(run)["emit"]["value"] == "as started"
    assert set(node_states(run)) == {"hold", "emit"}  # not the node added meanwhile
    assert wait_for_run(start_run(pipeline, user=alice)).version == 2
