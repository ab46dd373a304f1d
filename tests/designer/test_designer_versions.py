"""Version history in the designer, in a real browser against the live server: the list
with author, time and message; an older version read-only on its own canvas; the changes
from it to the current version marked on the canvas and listed; and restore."""

from __future__ import annotations

import re

from playwright.sync_api import expect
import pytest

from pipelines import services
from pipelines.models import Pipeline
from tests.designer.conftest import log_in, open_designer
from tests.factories import create_pipeline, edge

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def dataset_node(key: str, type: str, dataset: str, x: int) -> dict:
    return {"key": key, "type": type, "config": {"dataset": dataset}, "position": {"x": x, "y": 0}}


def cleaning_node(*operators: dict) -> dict:
    return {
        "key": "clean",
        "type": "data_cleaning",
        "config": {"operators": list(operators)},
        "position": {"x": 350, "y": 0},
    }


V1 = {
    "name": "Curate news",
    "nodes": [
        dataset_node("read", "input_dataset", "news", 0),
        cleaning_node({"name": "exact_dedup"}),
        dataset_node("publish", "output_dataset", "news-clean", 700),
    ],
    "edges": [edge("read", "clean"), edge("clean", "publish")],
}
# v2: one more operator on `clean`; `publish` replaced by `archive`.
V2 = {
    **V1,
    "nodes": [
        V1["nodes"][0],
        cleaning_node({"name": "exact_dedup"}, {"name": "text_length", "config": {"min_length": 50}}),
        dataset_node("archive", "output_dataset", "news-archive", 700),
    ],
    "edges": [edge("read", "clean"), edge("clean", "archive")],
}


def history_node(page, key: str):
    return page.locator(f'.dm-history-canvas .react-flow__node[data-id="{key}"]')


def test_see_an_older_version_and_its_changes_then_restore_it(engine, page, alice):
    shot = page.screenshots
    pipeline = create_pipeline(alice, V1)
    services.save_graph(pipeline, V2, author=alice, message="Longer texts only, archived")
    log_in(page, "alice")
    open_designer(page, pipeline)
    expect(page.locator(".dm-version")).to_have_text("v2")

    # The list: newest first, each with its author, time and message.
    page.click("#versions")
    versions = page.locator(".dm-version-list button")
    expect(versions).to_have_count(2)
    expect(versions.nth(0)).to_contain_text("v2")
    expect(versions.nth(0)).to_contain_text("current")
    expect(versions.nth(0)).to_contain_text("Longer texts only, archived")
    expect(versions.nth(1)).to_contain_text("v1")
    expect(versions.nth(1)).to_contain_text("Imported")
    expect(versions.nth(1)).to_contain_text("alice")
    created = pipeline.versions.get(number=1).created_at
    expect(versions.nth(1).locator("time")).to_have_attribute(
        "datetime", re.compile(re.escape(created.strftime("%Y-%m-%dT%H:%M:%S")))
    )
    shot("version-list")

    # Version 1, read-only, on its own canvas.
    page.click('.dm-version-list button[data-version="1"]')
    expect(page.locator(".dm-history-canvas .react-flow__node")).to_have_count(3)
    expect(history_node(page, "publish")).to_contain_text("publish")
    expect(history_node(page, "archive")).to_have_count(0)
    expect(page.locator(".dm-history-canvas")).to_contain_text("Read-only")
    shot("version-1-read-only")

    # The changes from v1 to the current v2: marked on the canvas, and listed.
    page.click("#show-changes")
    expect(page.locator("#show-changes")).to_have_text("Changes v1 → v2 (5)")
    expect(history_node(page, "archive")).to_have_class(re.compile(r"\bdiff-added\b"))
    expect(history_node(page, "publish")).to_have_class(re.compile(r"\bdiff-removed\b"))
    expect(history_node(page, "clean")).to_have_class(re.compile(r"\bdiff-changed\b"))
    expect(history_node(page, "read")).not_to_have_class(re.compile(r"diff-"))
    outline = history_node(page, "archive").locator(".dm-node").evaluate("card => getComputedStyle(card).outlineColor")
    assert outline == "rgb(47, 158, 68)"  # --succeeded: green
    changes = page.locator(".dm-history-changes")
    expect(changes.locator(".dm-changes-added")).to_contain_text("archive")
    expect(changes.locator(".dm-changes-removed")).to_contain_text("publish")
    changed = changes.locator('.dm-changed-node[data-node="clean"]')
    expect(changed).to_contain_text("config.operators")
    expect(changed.locator(".dm-new")).to_contain_text("text_length")
    expect(changes).to_contain_text("added clean → archive")
    expect(changes).to_contain_text("removed clean → publish")
    shot("changes-highlighted")

    # With unsaved changes, restoring would drop them: it waits until they are saved.
    page.click(".dm-dialog-full button:text('Close')")
    page.locator(".react-flow__pane").first.click(position={"x": 600, "y": 500})
    page.fill("#pipeline-name", "Curate news (draft)")
    expect(page.locator(".dm-dirty")).to_have_text("Unsaved changes")
    page.click("#versions")
    page.click('.dm-version-list button[data-version="1"]')
    expect(page.locator("#restore")).to_be_disabled()
    expect(page.locator(".dm-restore")).to_contain_text("You have unsaved changes")
    page.click(".dm-dialog-full button:text('Close')")
    page.fill("#pipeline-name", "Curate news")
    expect(page.locator(".dm-dirty")).to_have_text("All changes saved")

    # Restore v1: a new version v3 with v1's content; the designer shows it.
    page.click("#versions")
    page.click('.dm-version-list button[data-version="1"]')
    page.click("#restore")
    expect(page.locator("#versions-flash")).to_have_text("Restored v1 as the new version v3.")
    expect(page.locator(".dm-version")).to_have_text("v3")
    expect(page.locator('.dm-canvas .react-flow__node[data-id="publish"]')).to_be_visible()
    expect(page.locator('.dm-canvas .react-flow__node[data-id="archive"]')).to_have_count(0)
    pipeline = Pipeline.objects.get(pk=pipeline.pk)
    assert pipeline.version == 3
    assert pipeline.versions.get(number=3).message == "Restored version 1"
    assert services.current_document(pipeline)["nodes"] == services.version_document(pipeline, 1)["nodes"]
    shot("restored")

    page.click("#versions")
    expect(page.locator(".dm-version-list button").nth(0)).to_contain_text("Restored version 1")
    expect(page.locator(".dm-version-list button")).to_have_count(3)
    shot("history-after-restore")
