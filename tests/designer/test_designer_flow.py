"""A person builds, saves and runs a pipeline in the designer, in a real browser, against
the real server, database, Redis and Celery worker. Each step leaves a screenshot under
var/test-artifacts/designer/ (printed at the end of each test)."""

from __future__ import annotations

from playwright.sync_api import expect
import pytest

from pipelines.engine.states import RunState
from pipelines.models import Pipeline, Run
from tests.designer.conftest import connect, drop_from_palette, log_in, node, save_version
from tests.engine.conftest import make_dataset
from tests.factories import create_pipeline
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CORPUS = [
    {"id": 1, "text": "The weather in the mountains changes quickly in the afternoon."},
    {"id": 2, "text": "Adding fractions: 1/2 + 1/4 = 3/4, as every pupil learns."},
    {"id": 3, "text": "The weather in the mountains changes quickly in the afternoon."},
]


@pytest.fixture
def corpus(alice):
    return make_dataset(alice, "raw", CORPUS)


def test_build_save_fix_and_run_a_pipeline_live(engine, page, alice, corpus):
    shot = page.screenshots
    log_in(page, "alice")
    shot("pipeline-list")

    page.click("#new-pipeline")
    page.wait_for_url("**/designer/")
    pipeline = Pipeline.objects.get(owner=alice)
    expect(page.locator(".dm-palette h3")).to_have_text(["Data", "Logic", "Composition"])
    expect(page.locator(".dm-version")).to_have_text("v1")
    shot("new-pipeline")

    drop_from_palette(page, "input_dataset", 150, 200)
    drop_from_palette(page, "data_cleaning", 500, 200)
    expect(node(page, "input_dataset_1")).to_contain_text("Input Dataset")
    expect(node(page, "data_cleaning_1")).to_contain_text("Data Cleaning")
    # The handles come from the catalogue, each shown by name.
    expect(node(page, "input_dataset_1").locator(".dm-handle-name")).to_have_text(["out", "error"])
    expect(page.locator(".dm-dirty")).to_have_text("Unsaved changes")
    shot("nodes-dropped")

    connect(page, "input_dataset_1", "out", "data_cleaning_1")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    # A connection that would close a cycle is refused while it is dragged, with the reason.
    connect(page, "data_cleaning_1", "out", "input_dataset_1")
    expect(page.locator(".dm-hint")).to_contain_text("cycle")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    shot("connected-cycle-refused")

    # Saved half-configured: the server's errors show on the nodes and next to their fields.
    save_version(page, "First draft")
    expect(page.locator("#notice")).to_contain_text("Not saved: 2 problems")
    errors = {key: node(page, key).locator(".dm-node-errors") for key in ("input_dataset_1", "data_cleaning_1")}
    expect(errors["input_dataset_1"]).to_contain_text("config.dataset is required")
    expect(errors["data_cleaning_1"]).to_contain_text("config.operators add at least one operator")
    node(page, "input_dataset_1").click()
    expect(page.locator(".dm-config .error-detail")).to_contain_text("is required")
    assert Pipeline.objects.get(pk=pipeline.pk).version == 1
    shot("validation-error-on-node")

    # The fix: a `source` parameter, the dataset read from it, an operator on the cleaning node.
    page.locator(".react-flow__pane").click(position={"x": 700, "y": 600})
    page.fill("#pipeline-name", "Curate raw")
    page.click("#params__add")
    page.fill("#params_0_name", "source")
    page.select_option("#params_0_type", label="dataset")
    page.check("#params_0_required")
    node(page, "input_dataset_1").click()
    page.fill("#config_dataset", "{{ params.source }}")
    expect(errors["input_dataset_1"]).to_have_count(0)
    node(page, "data_cleaning_1").click()
    page.click("#config_operators__add")
    page.fill("#config_operators_0_name", "exact_dedup")
    expect(errors["data_cleaning_1"]).to_have_count(0)
    page.fill("#node-notes", "Drops exact duplicates")
    expect(node(page, "data_cleaning_1").locator(".dm-node-notes")).to_have_text("Drops exact duplicates")
    shot("configured")

    save_version(page, "Read the dataset from a parameter")
    expect(page.locator("#notice .dm-notice-text")).to_have_text("Saved as version v2.")
    expect(page.locator(".dm-version")).to_have_text("v2")
    expect(page.locator(".dm-dirty")).to_have_text("All changes saved")
    pipeline.refresh_from_db()
    assert (pipeline.name, pipeline.version) == ("Curate raw", 2)
    assert pipeline.versions.get(number=2).message == "Read the dataset from a parameter"
    assert pipeline.parameters[0] | {"description": ""} == {
        "name": "source",
        "type": "dataset",
        "required": True,
        "default": None,
        "description": "",
    }
    shot("saved")

    # Execute Now: the form is generated from the parameters; the canvas follows the run live.
    page.click("#execute")
    expect(page.locator(".dm-dialog")).to_contain_text("source")
    page.fill("#run_source", "raw")
    shot("execute-form")
    page.click("#start-run")
    for key in ("input_dataset_1", "data_cleaning_1"):
        expect(node(page, key).locator(".dm-node")).to_have_attribute("data-state", "succeeded", timeout=60_000)
    expect(page.locator("#run-state")).to_have_text("succeeded")
    expect(page.locator(".live-status")).to_have_text("live")
    expect(node(page, "input_dataset_1")).to_contain_text("3 out")
    expect(node(page, "data_cleaning_1")).to_contain_text("3 in · 2 out")
    colours = page.locator(".dm-node").evaluate_all("cards => cards.map(c => getComputedStyle(c).borderLeftColor)")
    assert colours == ["rgb(47, 158, 68)"] * 2  # --succeeded: green
    run = Run.objects.get(pipeline=pipeline)
    assert (run.state, run.params, run.version) == (RunState.SUCCEEDED, {"source": "raw"}, 2)
    shot("run-succeeded")

    # The selected node's log lines.
    node(page, "data_cleaning_1").click()
    expect(page.locator(".dm-logs h3")).to_contain_text("data_cleaning_1")
    expect(page.locator(".dm-logs .log").first).to_be_visible()
    shot("node-logs")


def test_an_existing_pipeline_opens_where_it_was_left_and_asks_before_losing_changes(engine, page, alice):
    shot = page.screenshots
    document = {
        "name": "Two steps",
        "parameters": [{"name": "limit", "type": "integer", "required": True}],
        "nodes": [
            {"key": "read", "type": "input_dataset", "config": {"dataset": "raw"}, "position": {"x": 0, "y": 0}},
            {"key": "write", "type": "output_dataset", "config": {"dataset": "out"}, "position": {"x": 400, "y": 120}},
        ],
        "edges": [{"source": "read", "source_handle": "out", "target": "write"}],
    }
    pipeline = create_pipeline(alice, document)
    log_in(page, "alice")
    page.click(f'a[href="/pipelines/{pipeline.pk}/designer/"]')
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    read, write = node(page, "read").bounding_box(), node(page, "write").bounding_box()
    assert write["x"] > read["x"] + read["width"] and write["y"] > read["y"], (read, write)
    expect(page.locator(".dm-dirty")).to_have_text("All changes saved")
    shot("loaded")

    # Execute Now without a required parameter: the server's answer is shown at the field.
    page.click("#execute")
    page.click("#start-run")
    expect(page.locator(".dm-dialog .error-detail")).to_have_text("is required")
    shot("missing-parameter")
    page.click(".dm-dialog button:text('Cancel')")
    assert not Run.objects.filter(pipeline=pipeline).exists()

    # Renaming a node's key keeps its edges.
    node(page, "read").click()
    page.fill("#node-key", "read_raw")
    page.press("#node-key", "Enter")
    expect(node(page, "read_raw")).to_be_visible()
    expect(page.locator(".react-flow__edge")).to_have_count(1)

    # A self-loop is refused too.
    connect(page, "write", "out", "write")
    expect(page.locator(".dm-hint")).to_contain_text("cannot connect to itself")
    expect(page.locator(".react-flow__edge")).to_have_count(1)

    node(page, "write").click()
    page.keyboard.press("Delete")
    expect(node(page, "write")).to_have_count(0)
    expect(page.locator(".react-flow__edge")).to_have_count(0)
    expect(page.locator(".dm-dirty")).to_have_text("Unsaved changes")
    shot("node-deleted")

    dialogs = []

    def stay(dialog):
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.click(".topbar nav a[href='/pipelines/']")
    wait_until(lambda: dialogs, 5, "the leave-page dialog", every=0.1, while_waiting=lambda: page.wait_for_timeout(1))
    assert dialogs == ["beforeunload"]
    assert page.url.endswith(f"/pipelines/{pipeline.pk}/designer/")
    expect(node(page, "read_raw")).to_be_visible()
    assert Pipeline.objects.get(pk=pipeline.pk).version == 1
