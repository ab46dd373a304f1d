"""The runs API on real Celery workers: start, list, detail, logs, cancel, re-run, permissions."""

import re
import socket
import time

import pytest
from rest_framework.test import APIClient

from pipelines.engine.runs import start_run
from pipelines.models import NodeRun, Run
from tests.engine.conftest import node_states, outputs, wait_for_run
from tests.factories import create_pipeline


def step(key, **config):
    return {"key": key, "type": "test_step", "config": config}


def edge(source, target, handle="out"):
    return {"source": source, "source_handle": handle, "target": target}


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def errors_by_field(response):
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def wait_for_state(node_run: NodeRun, state: str, timeout: float = 15) -> NodeRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node_run.refresh_from_db()
        if node_run.state == state:
            return node_run
        time.sleep(0.05)
    raise AssertionError(f"{node_run} never reached {state}")


@pytest.fixture
def param_pipeline(alice):
    doc = {
        "name": "params",
        "parameters": [
            {"name": "n", "type": "integer", "required": True},
            {"name": "label", "type": "string", "default": "x"},
        ],
        "nodes": [step("first", value="{{ params.n * 2 }}", log="first says {{ params.label }}"), step("second")],
        "edges": [edge("first", "second")],
    }
    return create_pipeline(alice, doc)


# --- start ---------------------------------------------------------------------------


def test_start_a_run_with_params_and_see_it_succeed(engine, alice, alice_api, param_pipeline):
    response = alice_api.post(f"/api/pipelines/{param_pipeline.pk}/runs/", {"params": {"n": 21}}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["pipeline"] == param_pipeline.pk
    assert body["trigger"] == "api"
    assert body["created_by"] == "alice"
    assert body["params"] == {"n": 21, "label": "x"}  # defaults applied
    assert {n["key"] for n in body["node_runs"]} == {"first", "second"}

    run = wait_for_run(Run.objects.get(pk=body["id"]))
    assert run.state == "succeeded", run.error
    assert outputs(run)["first"]["value"] == 42

    detail = alice_api.get(f"/api/runs/{run.pk}/").json()
    assert detail["state"] == "succeeded"
    first = next(n for n in detail["node_runs"] if n["key"] == "first")
    assert first["state"] == "succeeded"
    assert first["iteration"] == ""
    assert first["attempt"] == 1
    assert first["progress"] == 1.0
    assert first["output"]["value"] == 42
    assert first["error"] == ""
    assert first["started_at"] and first["finished_at"]
    assert first["duration_ms"] >= 0
    assert {"records_in", "records_out", "handles", "ready_at"} <= first.keys()
    # Which worker ran each node: Celery's node name (see tests/engine/workers.py) and the pid,
    # whether the node was claimed from the queue or handed on by the worker of its predecessor.
    for node_run in detail["node_runs"]:
        assert re.fullmatch(rf"worker-\d+@{re.escape(socket.gethostname())} pid \d+", node_run["worker"]), node_run


def test_a_specific_version_runs_that_version(engine, alice, alice_api, param_pipeline):
    from pipelines import services

    document = services.current_document(param_pipeline)
    document["nodes"][0]["config"]["value"] = "v2"
    services.save_graph(param_pipeline, document, author=alice)
    param_pipeline.refresh_from_db()
    assert param_pipeline.version == 2

    response = alice_api.post(
        f"/api/pipelines/{param_pipeline.pk}/runs/", {"params": {"n": 1}, "version": 1}, format="json"
    )
    assert response.status_code == 201
    run = wait_for_run(Run.objects.get(pk=response.json()["id"]))
    assert run.version == 1
    assert outputs(run)["first"]["value"] == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"params": {"n": "three"}}, "params.n", "must be an integer"),
        ({"params": {}}, "params.n", "is required"),
        ({"params": {"n": 1, "extra": 2}}, "params.extra", "is not a parameter of this pipeline"),
    ],
)
def test_bad_params_are_400_naming_the_parameter(transactional_db, alice_api, param_pipeline, body, field, message):
    # transactional_db: ids are not reused by later tests (the engine caches specs by pipeline id).
    response = alice_api.post(f"/api/pipelines/{param_pipeline.pk}/runs/", body, format="json")
    assert response.status_code == 400
    assert errors_by_field(response) == {field: message}
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"params": {"n": 1}, "version": 7}, "version"),
        ({"params": {"n": 1}, "version": "latest"}, "version"),
        ({"params": {"n": 1}, "version": 0}, "version"),
        ({"params": [1, 2]}, "params"),
    ],
)
def test_bad_version_or_params_shape_is_400_naming_the_field(transactional_db, alice_api, param_pipeline, body, field):
    response = alice_api.post(f"/api/pipelines/{param_pipeline.pk}/runs/", body, format="json")
    assert response.status_code == 400
    assert field in errors_by_field(response), response.json()
    assert not Run.objects.exists()


# --- list and detail -------------------------------------------------------------------


def test_lists_are_newest_first_and_filter_by_pipeline_and_state(engine, alice, alice_api, param_pipeline):
    other = create_pipeline(alice, {"name": "other", "nodes": [step("a", fail_always=True)]})
    first = wait_for_run(start_run(param_pipeline, {"n": 1}, user=alice))
    second = wait_for_run(start_run(param_pipeline, {"n": 2}, user=alice))
    failed = wait_for_run(start_run(other, user=alice))
    assert failed.state == "failed"

    page = alice_api.get(f"/api/pipelines/{param_pipeline.pk}/runs/").json()
    assert page["count"] == 2
    assert [r["id"] for r in page["results"]] == [second.pk, first.pk]
    assert page["results"][0]["pipeline_name"] == "params"
    assert "node_runs" not in page["results"][0]

    everything = alice_api.get("/api/runs/").json()
    assert [r["id"] for r in everything["results"]] == [failed.pk, second.pk, first.pk]
    by_pipeline = alice_api.get(f"/api/runs/?pipeline={other.pk}").json()
    assert [r["id"] for r in by_pipeline["results"]] == [failed.pk]
    by_state = alice_api.get("/api/runs/?state=succeeded").json()
    assert [r["id"] for r in by_state["results"]] == [second.pk, first.pk]
    assert alice_api.get("/api/runs/?state=failed").json()["results"][0]["error"].startswith("a: planned failure")

    assert "state" in errors_by_field(alice_api.get("/api/runs/?state=exploded"))
    assert "pipeline" in errors_by_field(alice_api.get("/api/runs/?pipeline=abc"))
    assert "pipeline" in errors_by_field(alice_api.get(f"/api/runs/?pipeline={2**64}"))


# --- logs ----------------------------------------------------------------------------


def test_logs_page_tail_and_filter_by_node(engine, alice, alice_api):
    keys = ["a", "b", "c", "d"]
    doc = {
        "name": "logs",
        "nodes": [step(k, log=f"hello from {k}") for k in keys],
        "edges": [edge("a", "b"), edge("b", "c"), edge("c", "d")],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    url = f"/api/runs/{run.pk}/logs/"

    everything = alice_api.get(url).json()
    assert [line["message"] for line in everything["results"]] == [f"hello from {k}" for k in keys]
    assert everything["has_more"] is False
    assert everything["results"][0]["node_key"] == "a"
    assert everything["results"][0]["level"] == "info"
    assert everything["results"][0]["iteration"] == ""

    # Paging forward: after=<next_after> until has_more is false.
    seen, after = [], None
    while True:
        page = alice_api.get(url, {"limit": 3, **({"after": after} if after else {})}).json()
        seen += [line["message"] for line in page["results"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == [f"hello from {k}" for k in keys]
    assert alice_api.get(url, {"after": after}).json() == {"results": [], "has_more": False, "next_after": after}

    tail = alice_api.get(url, {"tail": 2}).json()
    assert [line["message"] for line in tail["results"]] == ["hello from c", "hello from d"]

    only_b = alice_api.get(url, {"node": "b"}).json()
    assert [line["message"] for line in only_b["results"]] == ["hello from b"]
    assert alice_api.get(url, {"node": "b", "iteration": "x:1"}).json()["results"] == []

    assert "node" in errors_by_field(alice_api.get(url, {"node": "nope"}))
    assert "tail" in errors_by_field(alice_api.get(url, {"tail": 0}))
    assert "after" in errors_by_field(alice_api.get(url, {"after": "x"}))


# --- cancel --------------------------------------------------------------------------


def test_cancel_stops_a_running_node_and_a_finished_run_is_409(engine, alice, alice_api, tmp_path):
    marker = tmp_path / "slow.txt"
    doc = {
        "name": "slow",
        "nodes": [step("slow", progress_steps=20, sleep=4, marker_file=str(marker)), step("after")],
        "edges": [edge("slow", "after")],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    wait_for_state(NodeRun.objects.get(run=run, node_key="slow"), "running")

    response = alice_api.post(f"/api/runs/{run.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert {n["key"]: n["state"] for n in response.json()["node_runs"]} == {"slow": "cancelled", "after": "cancelled"}

    # The node stops at its next progress report, well before its 4 s, and never finishes.
    started = time.monotonic()
    time.sleep(1.0)
    run.refresh_from_db()
    assert run.state == "cancelled"
    assert node_states(run) == {"slow": "cancelled", "after": "cancelled"}
    time.sleep(max(0.0, 4.5 - (time.monotonic() - started)))
    assert not marker.exists()
    assert node_states(run) == {"slow": "cancelled", "after": "cancelled"}

    again = alice_api.post(f"/api/runs/{run.pk}/cancel/")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]

    done = wait_for_run(start_run(create_pipeline(alice, {"name": "quick", "nodes": [step("a")]}), user=alice))
    assert alice_api.post(f"/api/runs/{done.pk}/cancel/").status_code == 409


# --- re-run --------------------------------------------------------------------------


@pytest.fixture
def failing_pipeline(alice, tmp_path):
    doc = {
        "name": "rerun",
        "parameters": [{"name": "fail", "type": "boolean", "default": True}],
        "nodes": [
            step("up", value="up", marker_file=str(tmp_path / "up.txt")),
            step("down", fail_always="{{ params.fail }}", marker_file=str(tmp_path / "down.txt")),
        ],
        "edges": [edge("up", "down")],
    }
    return create_pipeline(alice, doc)


def test_rerun_from_the_failed_node_reuses_upstream_outputs(engine, alice, alice_api, failing_pipeline, tmp_path):
    original = wait_for_run(start_run(failing_pipeline, user=alice))
    assert original.state == "failed"
    assert node_states(original) == {"up": "succeeded", "down": "failed"}

    response = alice_api.post(
        f"/api/runs/{original.pk}/rerun/", {"from_node": "down", "params": {"fail": False}}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rerun_of"] == original.pk
    assert body["rerun_from"] == "down"
    assert body["params"] == {"fail": False}

    rerun = wait_for_run(Run.objects.get(pk=body["id"]))
    assert rerun.state == "succeeded", rerun.error
    # `up` was copied from the original run, not executed again: its marker has one line.
    assert (tmp_path / "up.txt").read_text().splitlines() == [f"{original.pk}|up||1"]
    assert (tmp_path / "down.txt").read_text().splitlines() == [f"{rerun.pk}|down||1"]
    up = NodeRun.objects.get(run=rerun, node_key="up")
    assert up.state == "succeeded" and up.output["value"] == "up"
    assert outputs(rerun)["down"]["input_values"] == {"up": "up"}


def test_rerun_without_from_node_restarts_the_failed_nodes(engine, alice, alice_api, failing_pipeline, tmp_path):
    original = wait_for_run(start_run(failing_pipeline, user=alice))
    response = alice_api.post(f"/api/runs/{original.pk}/rerun/", {"params": {"fail": False}}, format="json")
    assert response.status_code == 201
    assert response.json()["rerun_from"] == "down"
    assert wait_for_run(Run.objects.get(pk=response.json()["id"])).state == "succeeded"
    assert len((tmp_path / "up.txt").read_text().splitlines()) == 1


def test_rerun_bad_input_is_400_naming_the_field(engine, alice, alice_api, failing_pipeline):
    original = wait_for_run(start_run(failing_pipeline, user=alice))
    url = f"/api/runs/{original.pk}/rerun/"

    response = alice_api.post(url, {"from_node": "nope"}, format="json")
    assert response.status_code == 400
    assert errors_by_field(response) == {"from_node": "no top-level node 'nope'"}

    response = alice_api.post(url, {"params": {"fail": "no"}}, format="json")
    assert response.status_code == 400
    assert errors_by_field(response) == {"params.fail": "must be true or false"}

    assert "params" in errors_by_field(alice_api.post(url, {"params": "x"}, format="json"))
    assert Run.objects.count() == 1

    succeeded = wait_for_run(alice_api_start(alice_api, failing_pipeline, {"fail": False}))
    response = alice_api.post(f"/api/runs/{succeeded.pk}/rerun/", {}, format="json")
    assert response.status_code == 400
    assert "from_node" in errors_by_field(response)


def test_rerun_of_a_running_run_is_409(engine, alice, alice_api):
    run = start_run(create_pipeline(alice, {"name": "slow", "nodes": [step("a", sleep=2)]}), user=alice)
    response = alice_api.post(f"/api/runs/{run.pk}/rerun/", {"from_node": "a"}, format="json")
    assert response.status_code == 409
    alice_api.post(f"/api/runs/{run.pk}/cancel/")


def alice_api_start(client, pipeline, params):
    response = client.post(f"/api/pipelines/{pipeline.pk}/runs/", {"params": params}, format="json")
    assert response.status_code == 201, response.json()
    return Run.objects.get(pk=response.json()["id"])


# --- permissions ---------------------------------------------------------------------


def test_other_users_get_404_and_anonymous_401(engine, alice, bob, staff, param_pipeline):
    run = wait_for_run(start_run(param_pipeline, {"n": 1}, user=alice))
    bob_api = client_for(bob)
    anonymous = APIClient()
    pid, rid = param_pipeline.pk, run.pk
    calls = [
        ("get", f"/api/pipelines/{pid}/runs/", None),
        ("post", f"/api/pipelines/{pid}/runs/", {"params": {"n": 1}}),
        ("get", f"/api/runs/{rid}/", None),
        ("get", f"/api/runs/{rid}/logs/", None),
        ("post", f"/api/runs/{rid}/cancel/", None),
        ("post", f"/api/runs/{rid}/rerun/", {"from_node": "first"}),
    ]
    for method, url, body in calls:
        assert getattr(bob_api, method)(url, body, format="json").status_code == 404, url
        assert getattr(anonymous, method)(url, body, format="json").status_code == 401, url
    assert bob_api.get("/api/runs/").json()["count"] == 0
    assert bob_api.get(f"/api/runs/?pipeline={pid}").json()["count"] == 0
    assert anonymous.get("/api/runs/").status_code == 401
    assert Run.objects.count() == 1

    # Staff see every run.
    assert client_for(staff).get(f"/api/runs/{rid}/").status_code == 200
    assert client_for(staff).get("/api/runs/").json()["count"] == 1
