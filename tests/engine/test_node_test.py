"""Testing one node on a real worker, without a run."""

import time

import pytest
from rest_framework.test import APIClient

from pipelines.engine.runs import start_run
from pipelines.engine.runtime import cancel_run
from pipelines.models import NodeRun, Run
from tests.engine.conftest import make_dataset, node, wait_for_run
from tests.factories import create_pipeline


def step(key, **config):
    return {"key": key, "type": "test_step", "config": config}


def edge(source, target, handle="out"):
    return {"source": source, "source_handle": handle, "target": target}


def errors_by_field(response):
    return {error["field"]: error["message"] for error in response.json()["errors"]}


@pytest.fixture
def pipeline(alice, tmp_path):
    doc = {
        "name": "testable",
        "parameters": [{"name": "n", "type": "integer", "default": 2}],
        "nodes": [
            step("a", value="from a"),
            step("b", value="{{ params.n * 10 }}", log="b got n={{ params.n }}", marker_file=str(tmp_path / "b.txt")),
            step("broken", fail_always=True, log="about to fail"),
            {"key": "check", "type": "condition", "config": {"expression": "params.n > 3"}},
            {"key": "pause", "type": "wait", "config": {"duration_seconds": 1}},
            {"key": "repeat", "type": "loop", "config": {"mode": "count", "count": 2}},
            {**step("inner", value="{{ loop.index }}"), "parent": "repeat"},
        ],
        "edges": [edge("a", "b"), edge("a", "broken"), edge("b", "check"), edge("check", "pause", "true")],
    }
    return create_pipeline(alice, doc)


def wait_for_state(node_run, state, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node_run.refresh_from_db()
        if node_run.state == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"{node_run} never reached {state}")


def url(pipeline, key):
    return f"/api/pipelines/{pipeline.pk}/nodes/{key}/test/"


def test_a_node_runs_on_a_worker_with_the_given_inputs(engine, alice_api, pipeline, tmp_path):
    response = alice_api.post(url(pipeline, "b"), {"inputs": {"a": {"value": 7}}, "params": {"n": 4}}, format="json")
    assert response.status_code == 200, response.json()
    result = response.json()
    assert result["error"] is None
    assert result["output"]["input_values"] == {"a": 7}
    assert result["output"]["value"] == 40
    assert result["handles"] == ["out"]
    assert result["logs"][0]["message"] == "b got n=4"
    assert result["duration_ms"] >= 0
    assert result["inputs_from_run"] is None
    # It ran in a worker process (the marker names no run) and created no run.
    assert (tmp_path / "b.txt").read_text() == "0|b||1\n"
    assert not Run.objects.exists()


def test_parameter_defaults_and_a_config_override(engine, alice_api, pipeline):
    result = alice_api.post(url(pipeline, "b"), {"inputs": {}}, format="json").json()
    assert result["output"]["value"] == 20  # n defaults to 2
    assert result["output"]["inputs"] == []

    override = {"value": "n={{ params.n }}, a={{ nodes.a.output.value }}"}
    result = alice_api.post(
        url(pipeline, "b"), {"inputs": {"a": {"value": "x"}}, "config": override, "params": {"n": 5}}, format="json"
    ).json()
    assert result["error"] is None, result
    assert result["output"]["value"] == "n=5, a=x"
    assert result["logs"] == []  # the override replaced the whole config


def test_an_expression_field_is_evaluated(engine, alice_api, pipeline):
    result = alice_api.post(url(pipeline, "check"), {"params": {"n": 4}, "inputs": {"b": {"value": 1}}}, format="json")
    assert result.json()["handles"] == ["true"]
    result = alice_api.post(url(pipeline, "check"), {"params": {"n": 1}, "inputs": {"b": {"value": 1}}}, format="json")
    assert result.json()["handles"] == ["false"]
    assert result.json()["logs"][0]["message"] == "condition is false"


def test_a_failing_node_answers_its_error_and_logs(engine, alice_api, pipeline):
    response = alice_api.post(url(pipeline, "broken"), {"inputs": {}}, format="json")
    assert response.status_code == 200
    result = response.json()
    assert result["error"] == "planned failure on attempt 1"
    assert result["output"] is None
    assert [line["message"] for line in result["logs"]] == ["about to fail"]

    bad_template = alice_api.post(
        url(pipeline, "b"), {"inputs": {}, "config": {"value": "{{ nodes.a.output.value }}"}}, format="json"
    ).json()
    assert bad_template["error"].startswith("config: ")


def test_the_node_time_limit_is_the_timeout(engine, alice_api, pipeline):
    response = alice_api.post(url(pipeline, "b"), {"inputs": {}, "config": {"sleep": 5}, "timeout": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["error"] == "timed out after 1 s"


def test_inputs_default_to_the_latest_finished_run(engine, alice, alice_api, pipeline):
    # With no run yet, there are no inputs.
    assert alice_api.post(url(pipeline, "b"), {}, format="json").json()["output"]["inputs"] == []

    run = wait_for_run(start_run(pipeline, {"n": 1}, user=alice))
    result = alice_api.post(url(pipeline, "b"), {}, format="json").json()
    assert result["output"]["input_values"] == {"a": "from a"}
    assert result["inputs_from_run"] == run.pk


def test_a_node_inside_a_loop_gets_loop_variables(engine, alice_api, pipeline):
    result = alice_api.post(url(pipeline, "inner"), {"inputs": {}, "loop": {"index": 3}}, format="json").json()
    assert result["error"] is None, result
    assert result["output"]["value"] == 3
    assert result["output"]["loop_index"] == 3


@pytest.mark.parametrize("key", ["repeat", "pause"])
def test_loop_and_wait_nodes_cannot_be_tested_alone(alice_api, pipeline, key):
    response = alice_api.post(url(pipeline, key), {}, format="json")
    assert response.status_code == 400
    assert "cannot be tested alone" in errors_by_field(response)["key"]


def test_bad_input_is_400_naming_the_field(alice_api, pipeline):
    response = alice_api.post(url(pipeline, "b"), {"params": {"n": "many"}}, format="json")
    assert response.status_code == 400
    assert errors_by_field(response) == {"params.n": "must be an integer"}

    response = alice_api.post(url(pipeline, "b"), {"config": {"sleep": -1}}, format="json")
    assert response.status_code == 400
    assert [(e["field"], e["node"]) for e in response.json()["errors"]] == [("config.sleep", "b")]

    response = alice_api.post(url(pipeline, "b"), {"config": {"value": "{{ params.missing }}"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "config.value"

    assert "inputs" in errors_by_field(alice_api.post(url(pipeline, "b"), {"inputs": {"a": 3}}, format="json"))
    assert "timeout" in errors_by_field(alice_api.post(url(pipeline, "b"), {"timeout": 0}, format="json"))
    assert alice_api.post(url(pipeline, "nope"), {}, format="json").status_code == 404


def test_other_users_get_404_and_anonymous_401(alice_api, bob, pipeline):
    bob_api = APIClient()
    bob_api.force_authenticate(bob)
    assert bob_api.post(url(pipeline, "b"), {"inputs": {}}, format="json").status_code == 404
    assert APIClient().post(url(pipeline, "b"), {"inputs": {}}, format="json").status_code == 401


def test_504_when_no_worker_answers_in_time(engine, alice, alice_api, pipeline):
    # Both worker processes busy with a run's two slow branches: the test waits in the queue.
    busy = create_pipeline(
        alice,
        {"name": "busy", "nodes": [step(k, progress_steps=100, sleep=20) for k in ("x", "y")]},
    )
    run = start_run(busy, user=alice)
    for node_run in NodeRun.objects.filter(run=run):
        wait_for_state(node_run, "running")
    try:
        response = alice_api.post(url(pipeline, "b"), {"inputs": {}, "timeout": 1}, format="json")
        assert response.status_code == 504
        assert response.json() == {"detail": "no worker answered within 1 s"}
    finally:
        cancel_run(run)
    wait_for_run(run)


def test_a_long_test_answers_202_and_its_result_is_fetched_later(engine, alice_api, bob, pipeline, tmp_path):
    config = {"sleep": 1.5, "value": "{{ params.n * 10 }}", "marker_file": str(tmp_path / "b.txt")}
    response = alice_api.post(url(pipeline, "b"), {"inputs": {}, "config": config, "wait": 0}, format="json")
    assert response.status_code == 202, response.json()
    pending = response.json()
    assert pending["state"] == "pending"
    request_id = pending["request_id"]
    assert pending["result_url"] == f"http://testserver/api/node-tests/{request_id}/"

    bob_api = APIClient()
    bob_api.force_authenticate(bob)
    assert bob_api.get(pending["result_url"]).status_code == 404
    assert APIClient().get(pending["result_url"]).status_code == 401

    assert alice_api.get(pending["result_url"]).status_code == 202
    deadline = time.monotonic() + 15
    while (answer := alice_api.get(pending["result_url"])).status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert answer.status_code == 200
    assert answer.json()["output"]["value"] == 20
    assert answer.json()["error"] is None
    assert (tmp_path / "b.txt").read_text().splitlines() == ["0|b||1"]
    assert alice_api.get("/api/node-tests/" + "0" * 32 + "/").status_code == 404
    assert "wait" in errors_by_field(alice_api.post(url(pipeline, "b"), {"wait": -1}, format="json"))


def test_given_inputs_may_name_only_record_parts_of_the_owner(engine, alice, bob, alice_api):
    """A data node's test reads the parts its given inputs name: never another user's."""
    doc = {
        "name": "clean alone",
        "nodes": [
            node("read", "input_dataset", dataset="mine"),
            node("clean", "data_cleaning", operators=[{"name": "normalize_whitespace"}]),
        ],
        "edges": [edge("read", "clean")],
    }
    pipeline = create_pipeline(alice, doc)
    mine = make_dataset(alice, "mine", [{"text": "alice  1"}])
    theirs = make_dataset(bob, "theirs", [{"text": "bob's secret"}])

    def test_with(dataset):
        manifest = dataset.versions.get().manifest
        inputs = {"read": {"manifest": manifest, "count": manifest["count"]}}
        return alice_api.post(url(pipeline, "clean"), {"inputs": inputs}, format="json")

    refused = test_with(theirs)
    assert refused.status_code == 400
    assert list(errors_by_field(refused)) == ["inputs.read"]
    assert "bob's secret" not in refused.content.decode()

    answered = test_with(mine)
    assert answered.status_code == 200, answered.content
    assert answered.json()["output"]["samples"] == [{"text": "alice 1"}]

    # A part name that climbs out of an owned prefix is refused too.
    forged = dict(mine.versions.get().manifest)
    forged["parts"] = [{**forged["parts"][0], "name": f"datasets/{mine.pk}/../{theirs.pk}/x.jsonl"}]
    response = alice_api.post(url(pipeline, "clean"), {"inputs": {"read": {"manifest": forged}}}, format="json")
    assert list(errors_by_field(response)) == ["inputs.read"]
