"""The result cache never crosses owners and never outlives what a config names: the
dataset version `latest` points to, the saved task a node runs."""

import pytest

from nodes.saved_tasks import create_saved_task, update_saved_task
from pipelines.engine.runs import start_run
from pipelines.models import NodeRun
from tests.engine.conftest import all_records, make_dataset, node, wait_for_run
from tests.engine.node_types import EXECUTOR_VERSION_ENV
from tests.factories import create_pipeline, edge

pytestmark = pytest.mark.slow

CACHED = {"cache": True}


def run_of(owner, document):
    run = wait_for_run(start_run(create_pipeline(owner, document), user=owner), timeout=30)
    assert run.state == "succeeded", run.error
    return {row.node_key: row for row in NodeRun.objects.filter(run=run)}


def reader(name="docs"):
    return {"name": "read", "nodes": [node("read", "input_dataset", settings=CACHED, dataset=name)], "edges": []}


def texts(node_run):
    return [row["text"] for row in all_records(node_run.output["manifest"])]


def test_the_same_config_of_two_owners_never_shares_a_cached_result(engine, alice, bob):
    make_dataset(alice, "docs", [{"text": "alice's secret"}])
    make_dataset(bob, "docs", [{"text": "bob's own"}])
    assert texts(run_of(alice, reader())["read"]) == ["alice's secret"]
    bobs = run_of(bob, reader())["read"]
    assert bobs.state == "succeeded"  # executed, not `cached` from alice's run
    assert texts(bobs) == ["bob's own"]


def test_a_new_dataset_version_is_not_served_from_the_cache(engine, alice):
    from datasets import services
    from datasets.models import Dataset

    make_dataset(alice, "docs", [{"text": "first"}])
    assert run_of(alice, reader())["read"].state == "succeeded"
    assert run_of(alice, reader())["read"].state == "cached"
    dataset = Dataset.objects.get(owner=alice, name="docs")
    services.write_version(dataset, [[{"text": "second"}]], source="test")
    fresh = run_of(alice, reader())["read"]
    assert (fresh.state, texts(fresh)) == ("succeeded", ["second"])


def test_a_new_executor_version_is_not_served_from_the_cache(engine, alice, processes, monkeypatch, tmp_path):
    """Workers restarted with a node type whose executor_version was bumped execute it again:
    an older executor's result is never reused."""
    marker = tmp_path / "marks.txt"
    document = {"name": "step", "nodes": [node("step", "test_step", settings=CACHED, marker_file=str(marker))]}

    def restart_worker():
        processes.worker.stop()
        processes.start_worker()

    assert run_of(alice, document)["step"].state == "succeeded"
    assert run_of(alice, document)["step"].state == "cached"
    monkeypatch.setenv(EXECUTOR_VERSION_ENV, "2")
    restart_worker()
    try:
        assert run_of(alice, document)["step"].state == "succeeded"
        assert run_of(alice, document)["step"].state == "cached"  # the new executor's result, now
    finally:
        monkeypatch.delenv(EXECUTOR_VERSION_ENV)
        restart_worker()
    assert len(marker.read_text().splitlines()) == 2


def test_a_saved_cleaning_task_runs_and_an_edit_to_it_is_not_served_from_the_cache(engine, alice):
    make_dataset(alice, "docs", [{"text": "  Hello   there  "}, {"text": "hi"}])
    task = create_saved_task(
        owner=alice,
        kind="cleaning",
        name="tidy",
        config={"operators": [{"name": "normalize_whitespace"}]},
    )
    document = {
        "name": "tidy",
        "nodes": [
            node("read", "input_dataset", dataset="docs"),
            node("clean", "data_cleaning", settings=CACHED, task="tidy"),
        ],
        "edges": [edge("read", "clean")],
    }
    first = run_of(alice, document)["clean"]
    assert texts(first) == ["Hello there", "hi"]
    assert first.output["operators"]["steps"][0]["name"] == "normalize_whitespace"
    assert run_of(alice, document)["clean"].state == "cached"
    update_saved_task(
        task,
        config={"operators": [{"name": "normalize_whitespace"}, {"name": "text_length", "config": {"min_length": 5}}]},
    )
    edited = run_of(alice, document)["clean"]
    assert (edited.state, texts(edited)) == ("succeeded", ["Hello there"])


def test_a_missing_saved_task_fails_the_node_naming_it(engine, alice):
    make_dataset(alice, "docs", [{"text": "x"}])
    document = {
        "name": "missing",
        "nodes": [node("read", "input_dataset", dataset="docs"), node("clean", "data_cleaning", task="nope")],
        "edges": [edge("read", "clean")],
    }
    run = wait_for_run(start_run(create_pipeline(alice, document), user=alice), timeout=30)
    assert run.state == "failed"
    assert "clean: task: no saved cleaning task named 'nope'" in run.error
