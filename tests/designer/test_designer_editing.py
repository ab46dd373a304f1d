"""Editing on the canvas, in a real browser against the real server: undo and redo, copy
and paste, auto-layout, the keyboard shortcuts and their help, notes edited on the canvas,
Loop as a container that nodes are dropped into and dragged out of, and handles that
follow a node's config. Each step leaves a screenshot under var/test-artifacts/designer/."""

from __future__ import annotations

import re

from playwright.sync_api import expect
import pytest

from pipelines import services
from pipelines.models import Pipeline
from tests.designer.conftest import (
    connect,
    drop_from_palette,
    handle,
    log_in,
    node,
    open_designer,
    save_version,
)
from tests.factories import create_pipeline
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def saved_document(pipeline: Pipeline) -> dict:
    return services.current_document(Pipeline.objects.get(pk=pipeline.pk))


def saved_node(pipeline: Pipeline, key: str) -> dict:
    return next(n for n in saved_document(pipeline)["nodes"] if n["key"] == key)


def box(page, key: str) -> dict:
    return node(page, key).bounding_box()


def inside(inner: dict, outer: dict) -> bool:
    return (
        inner["x"] >= outer["x"]
        and inner["y"] >= outer["y"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def pane_click(page) -> None:
    """A click on the empty canvas: nothing selected, the side panel shows the pipeline."""
    page.locator(".react-flow__pane").click(position={"x": 20, "y": 20})


STACKED = {
    "name": "Stacked",
    "nodes": [
        # All at one spot, as an import without positions would put them.
        {"key": "read", "type": "input_dataset", "config": {"dataset": "raw"}},
        {
            "key": "clean",
            "type": "data_cleaning",
            "config": {"operators": [{"name": "exact_dedup", "config": {"ignore_case": True}}]},
        },
        {"key": "write", "type": "output_dataset", "config": {"dataset": "out"}},
    ],
    "edges": [
        {"source": "read", "source_handle": "out", "target": "clean"},
        {"source": "clean", "source_handle": "out", "target": "write"},
    ],
}


def test_undo_redo_copy_paste_layout_notes_and_shortcuts(engine, page, alice):
    shot = page.screenshots
    pipeline = create_pipeline(alice, STACKED)
    log_in(page, "alice")
    open_designer(page, pipeline)
    expect(page.locator("#undo")).to_be_disabled()
    expect(page.locator("#redo")).to_be_disabled()
    shot("stacked")

    # Auto-layout (dagre): left to right along the edges, nothing on top of anything.
    page.click("#auto-layout")

    def laid_out():  # after the fit-view animation
        read, clean, write = box(page, "read"), box(page, "clean"), box(page, "write")
        in_order = read["x"] + read["width"] < clean["x"] and clean["x"] + clean["width"] < write["x"]
        return in_order and (read, clean, write)

    read, clean, write = wait_until(laid_out, 5, "the nodes laid out left to right", every=0.1)
    assert not overlap(read, clean) and not overlap(clean, write)
    expect(page.locator(".dm-dirty")).to_have_text("Unsaved changes")
    shot("auto-layout")

    # Undo puts them back where they were, which is the saved state again; redo lays out again.
    page.click("#undo")
    expect(page.locator(".dm-dirty")).to_have_text("All changes saved")
    assert box(page, "read")["x"] == pytest.approx(box(page, "write")["x"], abs=1)
    page.keyboard.press("Control+Shift+Z")
    expect(page.locator(".dm-dirty")).to_have_text("Unsaved changes")
    wait_until(lambda: box(page, "read")["x"] + 200 < box(page, "write")["x"], 5, "the layout redone", every=0.1)

    # A node and an edge added, then undone one by one with Ctrl+Z, and redone.
    drop_from_palette(page, "output_dataset", 420, 500)
    expect(node(page, "output_dataset_1")).to_be_visible()
    connect(page, "clean", "out", "output_dataset_1")
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    pane_click(page)
    page.keyboard.press("Control+z")
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    page.keyboard.press("Control+z")
    expect(node(page, "output_dataset_1")).to_have_count(0)
    page.keyboard.press("Control+y")
    page.keyboard.press("Control+y")
    expect(node(page, "output_dataset_1")).to_be_visible()
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    shot("undo-redo")

    # Deleting is undone too, edges included.
    node(page, "output_dataset_1").click()
    page.keyboard.press("Delete")
    expect(node(page, "output_dataset_1")).to_have_count(0)
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    page.click("#undo")
    expect(node(page, "output_dataset_1")).to_be_visible()
    expect(page.locator(".react-flow__edge")).to_have_count(3)

    # A burst of typing in one field is one step.
    node(page, "clean").click()
    page.fill("#node-label", "Dedup")
    expect(node(page, "clean").locator(".dm-node-title")).to_have_text("Dedup")
    pane_click(page)
    page.keyboard.press("Control+z")
    expect(node(page, "clean").locator(".dm-node-title")).to_have_text("Data Cleaning")
    page.keyboard.press("Control+Shift+z")
    expect(node(page, "clean").locator(".dm-node-title")).to_have_text("Dedup")

    # Notes edited on the canvas: "Add a note" on the selected node, then double-click to edit.
    node(page, "read").click()
    node(page, "read").get_by_role("button", name="Add a note").click()
    editor = node(page, "read").locator(".dm-node-notes-editor")
    editor.fill("Raw crawl, one record per page")
    pane_click(page)
    expect(node(page, "read").locator(".dm-node-notes")).to_have_text("Raw crawl, one record per page")
    node(page, "read").locator(".dm-node-notes").dblclick()
    editor.fill("Raw crawl of May")
    editor.press("Control+Enter")
    expect(node(page, "read").locator(".dm-node-notes")).to_have_text("Raw crawl of May")
    node(page, "read").click()
    expect(page.locator("#node-notes")).to_have_value("Raw crawl of May")
    # Escape drops an edit.
    node(page, "read").locator(".dm-node-notes").dblclick()
    editor.fill("not this")
    editor.press("Escape")
    expect(node(page, "read").locator(".dm-node-notes")).to_have_text("Raw crawl of May")
    shot("notes-on-canvas")

    node(page, "output_dataset_1").click()
    page.fill("#config_dataset", "out2")

    # Copy and paste: new keys, same config; the edges between copied nodes come along.
    node(page, "read").click()
    node(page, "clean").click(modifiers=["Control"])
    node(page, "write").click(modifiers=["Control"])
    page.keyboard.press("Control+c")
    expect(page.locator(".dm-hint")).to_have_text("Copied 3 nodes. Ctrl+V pastes.")
    page.keyboard.press("Control+v")
    for key in ("read_1", "clean_1", "write_1"):
        expect(node(page, key)).to_be_visible()
    expect(page.locator(".react-flow__edge")).to_have_count(5)
    # The copies are selected, a little off the originals.
    expect(node(page, "clean_1")).to_have_class(re.compile(r"\bselected\b"))
    expect(node(page, "clean")).not_to_have_class(re.compile(r"\bselected\b"))
    assert box(page, "clean_1")["x"] > box(page, "clean")["x"] + 10
    shot("pasted")
    page.keyboard.press("Control+v")
    expect(node(page, "clean_2")).to_be_visible()
    expect(page.locator(".react-flow__edge")).to_have_count(7)

    # The shortcuts help: the ? key or the button; Escape closes it.
    pane_click(page)
    page.keyboard.press("?")
    help_box = page.locator("#shortcuts")
    expect(help_box).to_be_visible()
    expect(help_box).to_contain_text("Undo")
    expect(help_box).to_contain_text("Ctrl+Shift+Z")
    expect(help_box).to_contain_text("Auto-layout")
    shot("shortcuts")
    page.keyboard.press("Escape")
    expect(help_box).to_have_count(0)
    page.click("#show-shortcuts")
    expect(help_box).to_be_visible()
    page.click("#show-shortcuts")
    expect(help_box).to_have_count(0)

    save_version(page, "Copies and notes")
    expect(page.locator("#notice .dm-notice-text")).to_have_text("Saved as version v2.")
    document = saved_document(pipeline)
    keys = {n["key"] for n in document["nodes"]}
    assert keys == {"read", "clean", "write", "output_dataset_1"} | {
        f"{key}_{n}" for key in ("read", "clean", "write") for n in (1, 2)
    }
    for copy in ("clean_1", "clean_2"):
        assert saved_node(pipeline, copy)["config"]["operators"] == [
            {"name": "exact_dedup", "config": {"ignore_case": True}}
        ]
        assert saved_node(pipeline, copy)["label"] == "Dedup"
    assert {"source": "read_1", "source_handle": "out", "target": "clean_1"} in document["edges"]
    assert {"source": "clean_1", "source_handle": "out", "target": "write_1"} in document["edges"]
    assert saved_node(pipeline, "read")["notes"] == saved_node(pipeline, "read_1")["notes"] == "Raw crawl of May"
    shot("saved")


def test_loop_is_a_container_nodes_are_dropped_into_and_dragged_out_of(engine, page, alice):
    shot = page.screenshots
    pipeline = create_pipeline(
        alice,
        {"name": "Rounds", "nodes": [{"key": "read", "type": "input_dataset", "config": {"dataset": "raw"}}]},
    )
    log_in(page, "alice")
    open_designer(page, pipeline)

    drop_from_palette(page, "loop", 260, 30)  # above the Input Dataset, which the view centres
    loop = node(page, "loop_1")
    expect(loop.locator(".dm-node")).to_have_class(re.compile(r"\bis-container\b"))
    expect(loop).to_contain_text("Drop nodes here")
    # Dropped on the Loop, nodes go into it.
    loop_box = box(page, "loop_1")
    pane = page.locator(".react-flow__pane").bounding_box()
    into = {"x": loop_box["x"] - pane["x"] + 130, "y": loop_box["y"] - pane["y"] + 110}
    drop_from_palette(page, "data_synthesis", into["x"], into["y"])
    expect(node(page, "data_synthesis_1")).to_be_visible()
    drop_from_palette(page, "wait", into["x"] + 260, into["y"])
    expect(node(page, "wait_1")).to_be_visible()
    loop_box = box(page, "loop_1")
    assert inside(box(page, "data_synthesis_1"), loop_box)
    assert inside(box(page, "wait_1"), loop_box)
    shot("dropped-into-loop")

    # Inside the body nodes connect; an edge across the Loop's boundary is refused.
    connect(page, "data_synthesis_1", "out", "wait_1")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    connect(page, "read", "out", "data_synthesis_1")
    expect(page.locator(".dm-hint")).to_contain_text("cannot cross a Loop boundary")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    connect(page, "read", "out", "loop_1")
    expect(page.locator(".react-flow__edge")).to_have_count(2)

    # Moving the Loop moves its body.
    synthesis_before = box(page, "data_synthesis_1")
    head = loop.locator(".dm-node-title")
    head.hover()
    page.mouse.down()
    title = head.bounding_box()
    page.mouse.move(title["x"] + title["width"] / 2 + 120, title["y"] + title["height"] / 2, steps=8)
    page.mouse.up()
    synthesis_after = box(page, "data_synthesis_1")
    assert synthesis_after["x"] > synthesis_before["x"] + 60, (synthesis_before, synthesis_after)
    assert inside(synthesis_after, box(page, "loop_1"))

    # Configured, so the save is valid.
    loop.locator(".dm-node-title").click()
    page.fill("#config_count", "2")
    node(page, "data_synthesis_1").locator(".dm-node-title").click()
    page.fill("#config_prompt_template", "Round {{ loop.index }}: a short sentence.")
    node(page, "wait_1").locator(".dm-node-title").click()
    page.fill("#config_duration_seconds", "1")

    save_version(page, "A loop with a body")
    expect(page.locator("#notice .dm-notice-text")).to_have_text("Saved as version v2.")
    synthesis = saved_node(pipeline, "data_synthesis_1")
    loop_node = saved_node(pipeline, "loop_1")
    assert synthesis["parent"] == "loop_1" and saved_node(pipeline, "wait_1")["parent"] == "loop_1"
    assert loop_node["parent"] is None
    # Children's positions are relative to their Loop, as in the document format.
    assert 0 < synthesis["position"]["x"] < 400 and 60 <= synthesis["position"]["y"] < 300, synthesis
    shot("saved-with-body")

    # Reopened, the body is drawn inside its Loop.
    page.reload()
    page.locator(".dm-dirty").get_by_text("All changes saved").wait_for()
    assert inside(box(page, "data_synthesis_1"), box(page, "loop_1"))
    assert inside(box(page, "wait_1"), box(page, "loop_1"))

    # Dragged out of the Loop, a node leaves it, and its edge that would cross the boundary goes.
    wait_head = node(page, "wait_1").locator(".dm-node-title")
    wait_head.hover()
    page.mouse.down()
    loop_box = box(page, "loop_1")
    page.mouse.move(loop_box["x"] + loop_box["width"] / 2, loop_box["y"] + loop_box["height"] + 90, steps=10)
    page.mouse.up()
    expect(page.locator(".dm-hint")).to_contain_text("1 edge removed: an edge cannot cross a Loop boundary")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    assert not overlap(box(page, "wait_1"), box(page, "loop_1"))
    shot("dragged-out")
    # One undo brings it back in, with its edge.
    pane_click(page)
    page.keyboard.press("Control+z")
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    assert inside(box(page, "wait_1"), box(page, "loop_1"))
    page.keyboard.press("Control+Shift+z")
    expect(page.locator(".react-flow__edge")).to_have_count(1)

    save_version(page, "Wait after the loop")
    expect(page.locator("#notice .dm-notice-text")).to_have_text("Saved as version v3.")
    assert saved_node(pipeline, "wait_1")["parent"] is None
    shot("saved-without-wait")


def test_a_parallel_nodes_handles_follow_its_branches(engine, page, alice):
    shot = page.screenshots
    pipeline = create_pipeline(alice, {"name": "Fan out", "nodes": []})
    log_in(page, "alice")
    open_designer(page, pipeline)

    drop_from_palette(page, "parallel", 200, 150)
    names = node(page, "parallel_1").locator(".dm-handle-name")
    expect(names).to_have_text(["branch-1", "branch-2", "error"])
    page.fill("#config_branches", "3")
    expect(names).to_have_text(["branch-1", "branch-2", "branch-3", "error"])
    drop_from_palette(page, "wait", 600, 300)
    connect(page, "parallel_1", "branch-3", "wait_1")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    expect(page.locator(".react-flow__edge")).to_contain_text("branch-3")
    shot("three-branches")

    node(page, "wait_1").click()
    page.fill("#config_duration_seconds", "1")
    save_version(page, "Three branches")
    expect(page.locator("#notice .dm-notice-text")).to_have_text("Saved as version v2.")
    assert saved_document(pipeline)["edges"] == [
        {"source": "parallel_1", "source_handle": "branch-3", "target": "wait_1"}
    ]

    # Reopened, the saved config gives the handles again.
    page.reload()
    page.locator(".dm-dirty").get_by_text("All changes saved").wait_for()
    expect(names).to_have_text(["branch-1", "branch-2", "branch-3", "error"])
    expect(handle(page, "parallel_1", "branch-3")).to_be_visible()
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    shot("reopened")
