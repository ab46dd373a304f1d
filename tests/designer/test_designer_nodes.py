"""The side panel and a node's life in runs, in a real browser against the real server,
database, Redis and Celery worker: the dataset picker, `{{ params.x }}` completion, the
operator chain editor, Test node, a node's output in a run (samples, kept and dropped per
operator, dropped samples with reasons, logs), Re-run from here, Cancel, and the seed
example built by dragging and connecting, then run live. Each step leaves a screenshot
under var/test-artifacts/designer/."""

from __future__ import annotations

import re

from playwright.sync_api import expect
import pytest

from nodes.operators import registry as operators
from pipelines import services
from pipelines.engine.states import NodeState, RunState
from pipelines.models import Pipeline, Run
from tests.designer.conftest import (
    connect,
    drop_from_palette,
    log_in,
    node,
    open_designer,
    save_version,
)
from tests.engine.conftest import make_dataset, node_states, wait_for_run
from tests.factories import create_pipeline, edge

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CORPUS = [
    {"id": 1, "text": "The weather in the mountains changes quickly in the afternoon."},
    {"id": 2, "text": "Adding fractions: 1/2 + 1/4 = 3/4, as every pupil learns."},
    {"id": 3, "text": "The weather in the mountains changes quickly in the afternoon."},
    {"id": 4, "text": "Too short."},
]


def saved_node(pipeline: Pipeline, key: str) -> dict:
    document = services.current_document(Pipeline.objects.get(pk=pipeline.pk))
    return next(n for n in document["nodes"] if n["key"] == key)


def suggestions(page):
    return page.locator(".dm-suggestions [role=option] .dm-suggestion-label")


def select(page, key: str) -> None:
    node(page, key).locator(".dm-node-title").click()


@pytest.fixture
def raw(alice):
    return make_dataset(alice, "raw", CORPUS)


def read_step_write(name: str, source: str, step: dict, output: str, **fields) -> dict:
    """read `source` → `step` → write `output`, left to right."""
    return {
        "name": name,
        **fields,
        "nodes": [
            {"key": "read", "type": "input_dataset", "config": {"dataset": source}},
            {**step, "position": {"x": 300, "y": 0}},
            {"key": "write", "type": "output_dataset", "config": {"dataset": output}, "position": {"x": 600, "y": 0}},
        ],
        "edges": [edge("read", step["key"]), edge(step["key"], "write")],
    }


def curate_document(**clean_config) -> dict:
    operators = [
        {"name": "text_length", "config": {"min_length": "{{ params.min_len }}"}},
        {"name": "exact_dedup", "config": {}},
    ]
    return read_step_write(
        "Curate",
        "{{ params.source }}",
        {"key": "clean", "type": "data_cleaning", "config": clean_config or {"operators": operators}},
        "curated",
        parameters=[
            {"name": "source", "type": "dataset", "default": "raw"},
            {"name": "min_len", "type": "integer", "default": 20},
        ],
    )


def test_dataset_picker_reference_completion_and_the_operator_chain(engine, page, alice, raw):
    shot = page.screenshots
    make_dataset(alice, "other", [{"text": "x"}])
    document = curate_document(operators=[{"name": "exact_dedup", "config": {}}])
    document["nodes"].append(
        {"key": "enough", "type": "condition", "config": {"expression": "true"}, "position": {"x": 600, "y": 250}}
    )
    document["edges"].append(edge("clean", "enough"))
    pipeline = create_pipeline(alice, document)
    log_in(page, "alice")
    open_designer(page, pipeline)

    # Opening nodes' forms changes nothing: nothing to undo.
    for key in ("clean", "enough", "read"):
        select(page, key)
    expect(page.locator("#undo")).to_be_disabled()
    expect(page.locator(".dm-dirty")).to_have_text("All changes saved")

    # A dataset field picks from the datasets (and the dataset parameters).
    field = page.locator("#config_dataset")
    field.fill("")
    expect(suggestions(page)).to_have_text(["{{ params.source }}", "other", "raw"])
    expect(page.locator(".dm-suggestions")).to_contain_text("v1")
    shot("dataset-picker")
    page.locator(".dm-suggestions [role=option]", has_text="other").click()
    expect(field).to_have_value("other")
    field.fill("")
    field.press_sequentially("ra")
    expect(suggestions(page)).to_have_text(["{{ params.source }}", "raw"])  # paRAms too
    field.press("ArrowDown")
    field.press("Enter")
    expect(field).to_have_value("raw")

    # `{{ ` in a string field offers the parameters and the nodes' outputs.
    select(page, "write")
    field = page.locator("#config_dataset")
    field.fill("")
    field.press_sequentially("curated-{{ ")
    # (Every node's output but this node's own.)
    expect(suggestions(page)).to_have_text(
        ["params.source", "params.min_len", "nodes.clean.output.", "nodes.enough.output.", "nodes.read.output."]
    )
    shot("reference-completion")
    field.press_sequentially("params.m")
    expect(suggestions(page)).to_have_text(["params.min_len"])
    field.press("Enter")
    expect(field).to_have_value("curated-{{ params.min_len }}")

    # A Condition's expression completes bare references.
    select(page, "enough")
    field = page.locator("#config_expression")
    field.fill("")
    field.press_sequentially("nodes.cl")
    expect(suggestions(page)).to_have_text(["nodes.clean.output."])
    field.press("Enter")
    field.press_sequentially("count >= params.min")
    page.locator(".dm-suggestions [role=option]", has_text="params.min_len").click()
    expect(field).to_have_value("nodes.clean.output.count >= params.min_len")
    shot("expression-completion")

    # The operator chain: steps from the catalogue, each with its own config form.
    select(page, "clean")
    steps = page.locator(".dm-operator-step")
    expect(steps).to_have_count(1)
    expect(steps.nth(0)).to_contain_text("deduplicator")
    page.click("#config_operators__add")
    name = page.locator("#config_operators_1_name")
    expect(name).to_be_focused()
    expect(suggestions(page).first).to_be_visible()  # the whole catalogue, before typing
    name.press_sequentially("length")
    page.locator(".dm-suggestions [role=option]", has_text="Text length").click()
    expect(name).to_have_value("text_length")
    expect(steps.nth(1)).to_contain_text("filter")
    min_length = page.locator("#config_operators_1_config_min_length")
    expect(min_length).to_have_value("50")  # the operator's default
    # Bad input is named at its field.
    min_length.fill("-5")
    expect(steps.nth(1).locator(".error-detail")).to_contain_text(">= 0")
    min_length.fill("20")
    expect(steps.nth(1).locator(".error-detail")).to_have_count(0)
    # An operator that is not in the catalogue says so.
    page.click("#config_operators__add")
    page.locator("#config_operators_2_name").fill("no_such_operator")
    expect(steps.nth(2)).to_contain_text("no_such_operator is not in the operator catalogue")
    shot("operator-chain")
    page.get_by_role("button", name="Remove operator 3").click()
    expect(steps).to_have_count(2)
    page.get_by_role("button", name="Move operator 2 up").click()
    expect(page.locator("#config_operators_0_name")).to_have_value("text_length")
    expect(page.locator("#config_operators_1_name")).to_have_value("exact_dedup")
    shot("operators-reordered")

    save_version(page, "Pickers and chain")
    expect(page.locator("#notice .dm-notice-text")).to_have_text("Saved as version v2.")
    text_length = {**operators.get("text_length").describe()["default_config"], "min_length": 20}
    assert saved_node(pipeline, "clean")["config"]["operators"] == [
        {"name": "text_length", "config": text_length},
        {"name": "exact_dedup", "config": {}},
    ]
    assert saved_node(pipeline, "read")["config"]["dataset"] == "raw"
    assert saved_node(pipeline, "write")["config"]["dataset"] == "curated-{{ params.min_len }}"
    assert saved_node(pipeline, "enough")["config"]["expression"] == "nodes.clean.output.count >= params.min_len"


def test_test_node_shows_output_logs_and_errors_in_place(engine, page, alice, raw):
    shot = page.screenshots
    pipeline = create_pipeline(alice, curate_document())
    log_in(page, "alice")
    open_designer(page, pipeline)

    # The first node reads the dataset: its records and log lines show under the button.
    select(page, "read")
    page.click("#test-node")
    result = page.locator(".dm-test-result")
    expect(result).to_have_attribute("data-outcome", "succeeded", timeout=30_000)
    expect(result).to_contain_text("4 records")
    expect(result.locator(".dm-records")).to_contain_text("The weather in the mountains")
    expect(result.locator(".dm-test-logs .log").first).to_be_visible()
    shot("test-input-node")

    # Without a finished run, the cleaning node has no input: its error shows in place.
    select(page, "clean")
    page.click("#test-node")
    expect(result).to_have_attribute("data-outcome", "failed", timeout=30_000)
    expect(result.locator(".dm-test-error")).to_contain_text("no records came in")
    shot("test-error")

    # After a run, it is tested on the run's upstream outputs, with the config as edited now.
    page.click("#execute")
    page.click("#start-run")
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=60_000)
    run = Run.objects.get(pipeline=pipeline)
    select(page, "clean")
    page.locator("#config_operators_0_config_min_length").fill("1")
    page.click("#test-node")
    expect(result).to_have_attribute("data-outcome", "succeeded", timeout=30_000)
    expect(result).to_contain_text(f"Inputs: the upstream outputs of run #{run.pk}.")
    expect(result.locator(".dm-output-count")).to_contain_text("3 records")
    counts = result.locator(".dm-operator-counts tbody tr")
    expect(counts.nth(0)).to_contain_text("text_length")
    expect(counts.nth(0)).to_contain_text("4")  # in: all four, min_length 1 keeps them
    expect(counts.nth(1)).to_contain_text("1 duplicate")
    expect(result.locator(".dm-dropped")).to_contain_text("Dropped by exact_dedup")
    shot("test-after-run")

    # Bad config is named at its field, and nothing runs.
    page.locator("#config_operators_0_config_min_length").fill("-1")
    page.click("#test-node")
    expect(page.locator(".dm-test .dm-error-list")).to_contain_text("config.operators[0].config.min_length")
    page.locator("#config_operators_0_config_min_length").fill("20")

    # A node that is not saved yet cannot be tested; a Loop cannot run alone.
    drop_from_palette(page, "loop", 400, 420)
    page.click("#test-node")
    expect(page.locator(".dm-test .dm-error-list")).to_contain_text("This node is not saved yet")
    page.locator("#config_count").fill("1")
    save_version(page, "With a loop")
    expect(page.locator("#notice .dm-notice-text")).to_contain_text("Saved as version v2.")
    select(page, "loop_1")
    page.click("#test-node")
    expect(page.locator(".dm-test .dm-error-list")).to_contain_text("it cannot be tested alone")
    shot("not-testable")


def test_a_nodes_output_logs_rerun_from_here_with_edited_parameters(engine, page, alice, raw):
    shot = page.screenshots
    pipeline = create_pipeline(alice, curate_document())
    log_in(page, "alice")
    open_designer(page, pipeline)

    page.click("#execute")
    expect(page.locator("#run_min_len")).to_have_value("20")
    # A dataset parameter is picked from the datasets (a run's values refer to nothing).
    page.fill("#run_source", "")
    expect(suggestions(page)).to_have_text(["raw"])
    page.locator("#run_source").press("Enter")
    expect(page.locator("#run_source")).to_have_value("raw")
    page.click("#start-run")
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=60_000)
    first = Run.objects.get(pipeline=pipeline)

    # The selected node's sample output, kept and dropped per operator, dropped samples
    # with their reasons, and its log lines.
    select(page, "clean")
    output = page.locator(".dm-node-output")
    expect(output.locator(".dm-output-count")).to_contain_text("2 records")
    expect(output.locator(".dm-output-samples .dm-records")).to_contain_text("Adding fractions")
    counts = output.locator(".dm-operator-counts tbody tr")
    expect(counts.nth(0)).to_contain_text(re.compile(r"text_length\s*filter\s*4\s*3\s*1 too_short"))
    expect(counts.nth(1)).to_contain_text(re.compile(r"exact_dedup\s*deduplicator\s*3\s*2\s*1 duplicate"))
    expect(output.locator('.dm-dropped-reason[data-reason="too_short"]')).to_contain_text("Too short.")
    expect(output.locator('.dm-dropped-reason[data-reason="duplicate"]')).to_contain_text("The weather")
    expect(page.locator(".dm-logs h3")).to_contain_text("clean")
    expect(page.locator(".dm-logs .log").first).to_be_visible()
    shot("node-output-and-logs")

    # Re-run from here, with an edited parameter: a new run that reuses `read`.
    page.click("#rerun-from-node")
    dialog = page.locator(".dm-dialog")
    expect(dialog).to_contain_text("Re-run from clean")
    expect(page.locator("#run_min_len")).to_have_value("20")  # the run's own values
    page.fill("#run_min_len", "1")
    shot("rerun-dialog")
    dialog.get_by_role("button", name="Re-run").click()
    expect(dialog).to_have_count(0)
    second = wait_for_run(Run.objects.exclude(pk=first.pk).get(pipeline=pipeline), timeout=60)
    expect(page.locator(".dm-run-status a")).to_have_text(f"Run #{second.pk}")
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=60_000)
    assert (second.rerun_of_id, second.rerun_from, second.params) == (
        first.pk,
        "clean",
        {"source": "raw", "min_len": 1},
    )
    select(page, "clean")
    expect(output.locator(".dm-output-count")).to_contain_text("3 records")  # nothing too short now
    for key in ("read", "clean", "write"):
        expect(node(page, key).locator(".dm-node")).to_have_attribute("data-state", "succeeded")
    shot("rerun-succeeded")


def test_cancel_a_running_pipeline_from_the_canvas(engine, page, alice, raw):
    shot = page.screenshots
    pause = {"key": "pause", "type": "wait", "config": {"duration_seconds": 120}}
    pipeline = create_pipeline(alice, read_step_write("Slow", "raw", pause, "late"))
    log_in(page, "alice")
    open_designer(page, pipeline)
    page.click("#execute")
    page.click("#start-run")
    expect(node(page, "pause").locator(".dm-node")).to_have_attribute("data-state", "waiting", timeout=60_000)
    expect(page.locator("#rerun-from-node")).to_have_count(0)  # not while it runs
    shot("waiting")
    page.click("#cancel-run")
    expect(page.locator("#run-state")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#cancel-run")).to_have_count(0)
    run = Run.objects.get(pipeline=pipeline)
    assert run.state == RunState.CANCELLED
    assert node_states(run)["write"] != NodeState.SUCCEEDED
    shot("cancelled")


# --- the seed example, built by hand ---------------------------------------------------

WATCH_STATES = """() => {
    window.seenStates = {};
    const record = (card) => {
        const key = card.closest('.react-flow__node').dataset.id;
        const state = card.dataset.state;
        const seen = (window.seenStates[key] ??= []);
        if (state && seen[seen.length - 1] !== state) seen.push(state);
    };
    new MutationObserver((changes) => changes.forEach((c) => record(c.target))).observe(
        document.querySelector('.react-flow__nodes'),
        {subtree: true, attributes: true, attributeFilter: ['data-state']},
    );
}"""


def test_build_the_seed_example_by_dragging_and_run_it_live(engine, page, alice, raw):
    """Input Dataset → Data Cleaning → Condition on a quality metric (the share of records
    kept) → Data Annotation or Data Synthesis → Output Dataset, built from the palette."""
    shot = page.screenshots
    log_in(page, "alice")
    page.click("#new-pipeline")
    page.wait_for_url("**/designer/")
    pipeline = Pipeline.objects.get(owner=alice)

    for type_key, x, y in [
        ("input_dataset", 130, 80),
        ("data_cleaning", 400, 80),
        ("condition", 670, 80),
        ("data_annotation", 400, 330),
        ("data_synthesis", 400, 560),
        ("output_dataset", 670, 330),
        ("output_dataset", 670, 560),
    ]:
        drop_from_palette(page, type_key, x, y)
    for source, source_handle, target in [
        ("input_dataset_1", "out", "data_cleaning_1"),
        ("data_cleaning_1", "out", "condition_1"),
        ("condition_1", "true", "data_annotation_1"),
        ("condition_1", "false", "data_synthesis_1"),
        ("data_annotation_1", "out", "output_dataset_1"),
        ("data_synthesis_1", "out", "output_dataset_2"),
    ]:
        connect(page, source, source_handle, target)
    expect(page.locator(".react-flow__edge")).to_have_count(6)
    shot("dragged-and-connected")

    # The parameter the condition compares with.
    page.locator(".react-flow__pane").click(position={"x": 20, "y": 20})
    page.fill("#pipeline-name", "Curate, then annotate or synthesize")
    page.click("#params__add")
    page.fill("#params_0_name", "min_kept_share")
    page.select_option("#params_0_type", label="number")
    page.fill("#params_0_default", "0.5")

    select(page, "input_dataset_1")
    page.locator("#config_dataset").click()
    page.locator(".dm-suggestions [role=option]", has_text="raw").click()
    select(page, "data_cleaning_1")
    page.click("#config_operators__add")
    page.locator("#config_operators_0_name").press_sequentially("exact")
    page.locator("#config_operators_0_name").press("Enter")
    select(page, "condition_1")
    expression = page.locator("#config_expression")
    expression.press_sequentially("nodes.data_c")
    expression.press("Enter")
    expression.press_sequentially("count >= params.min")
    expression.press("Enter")
    expression.press_sequentially(" * nodes.data_c")
    expression.press("Enter")
    expression.press_sequentially("operators.records_in")
    share = "nodes.data_cleaning_1.output.count >= params.min_kept_share"
    expect(expression).to_have_value(f"{share} * nodes.data_cleaning_1.output.operators.records_in")
    select(page, "data_annotation_1")
    for index, label in enumerate(["weather", "maths"]):
        page.click("#config_labels__add")
        page.fill(f"#config_labels_{index}", label)
    page.fill("#config_score_field", "quality")
    page.select_option("#config_score_method", "heuristic")
    select(page, "data_synthesis_1")
    page.fill("#config_prompt_template", "Ask a question about: {{ record.text }}")
    select(page, "output_dataset_1")
    page.fill("#config_dataset", "raw-annotated")
    select(page, "output_dataset_2")
    page.fill("#config_dataset", "raw-synthesized")
    page.click("#auto-layout")
    shot("configured")

    save_version(page, "The seed example")
    expect(page.locator("#notice .dm-notice-text")).to_have_text("Saved as version v2.")
    shot("saved")

    # Run with a parameter and watch each node's state arrive over the websocket.
    page.evaluate(WATCH_STATES)
    page.click("#execute")
    page.fill("#run_min_kept_share", "0.6")
    page.click("#start-run")
    taken = ["input_dataset_1", "data_cleaning_1", "condition_1", "data_annotation_1", "output_dataset_1"]
    for key in taken:
        expect(node(page, key).locator(".dm-node")).to_have_attribute("data-state", "succeeded", timeout=60_000)
    for key in ("data_synthesis_1", "output_dataset_2"):  # 3 of 4 kept: 0.75 >= 0.6
        expect(node(page, key).locator(".dm-node")).to_have_attribute("data-state", "skipped")
    expect(page.locator("#run-state")).to_have_text("succeeded")
    seen = page.evaluate("() => window.seenStates")
    # Live: each card changed in place as the run's events arrived (on a fast machine the
    # first snapshot may already find some nodes done), never going back.
    order = ["pending", "ready", "running", "waiting", "succeeded"]
    for key in taken:
        assert seen[key][-1] == "succeeded" and seen[key] == sorted(seen[key], key=order.index), seen
    colours = [
        node(page, key).locator(".dm-node").evaluate("card => getComputedStyle(card).borderLeftColor") for key in taken
    ]
    assert colours == ["rgb(47, 158, 68)"] * len(taken)  # --succeeded: green
    run = Run.objects.get(pipeline=pipeline)
    assert (run.state, run.params) == (RunState.SUCCEEDED, {"min_kept_share": 0.6})
    shot("run-succeeded")

    # A node's logs and its sample output.
    select(page, "data_cleaning_1")
    expect(page.locator(".dm-logs .log")).to_contain_text(["kept 3 of 4 records"])
    expect(page.locator(".dm-node-output .dm-output-samples .dm-records")).to_contain_text("Adding fractions")
    shot("cleaning-logs-and-samples")
    select(page, "data_annotation_1")
    expect(page.locator(".dm-node-output .dm-records thead")).to_contain_text("quality")
    shot("annotation-output")
