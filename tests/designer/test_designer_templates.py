"""Templates in a real browser: Save as Template from the designer, the gallery with a
preview of each graph, and Use Template, which creates a pipeline and opens it."""

from __future__ import annotations

from playwright.sync_api import expect
import pytest

from pipelines import services
from pipelines.models import Pipeline, Template
from tests.designer.conftest import log_in, open_designer
from tests.factories import create_pipeline, edge

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DOCUMENT = {
    "name": "Curate news",
    "description": "Deduplicated news articles",
    "parameters": [{"name": "source", "type": "dataset", "required": True}],
    "nodes": [
        {
            "key": "read",
            "type": "input_dataset",
            "config": {"dataset": "{{ params.source }}"},
            "position": {"x": 0, "y": 0},
        },
        {
            "key": "clean",
            "type": "data_cleaning",
            "config": {"operators": [{"name": "exact_dedup"}]},
            "position": {"x": 350, "y": 0},
        },
    ],
    "edges": [edge("read", "clean")],
}


def canvas_node(page, key: str):
    return page.locator(f'.dm-canvas .react-flow__node[data-id="{key}"]')


def test_save_as_template_then_create_a_pipeline_from_it(engine, page, alice):
    shot = page.screenshots
    pipeline = create_pipeline(alice, DOCUMENT)
    log_in(page, "alice")
    open_designer(page, pipeline)

    page.click("#save-as-template")
    expect(page.locator("#template-name")).to_have_value("Curate news")
    expect(page.locator("#template-description")).to_have_value("Deduplicated news articles")
    page.fill("#template-name", "")
    page.click("#save-template")
    expect(page.locator(".dm-dialog .dm-error-text")).to_have_text("Name: This field may not be blank.")
    shot("name-refused")

    page.fill("#template-name", "News cleaner")
    page.fill("#template-description", "Reads a dataset parameter and drops exact duplicates.")
    page.click("#save-template")
    expect(page.locator("#template-saved")).to_contain_text("News cleaner")
    template = Template.objects.get(owner=alice)
    assert template.document == services.current_document(pipeline) | {"name": "Curate news"}
    shot("template-saved")

    # The gallery: the new template with a drawing of its two nodes and their edge.
    page.click("#template-saved a")
    page.wait_for_url("**/templates/")
    card = page.locator(f'.template-card[data-template="{template.pk}"]')
    expect(card).to_contain_text("News cleaner")
    expect(card).to_contain_text("2 nodes · parameters: source")
    expect(card.locator(".preview-node")).to_have_count(2)
    expect(card.locator(".preview-edge")).to_have_count(1)
    expect(page.locator("#templates-built_in .template-card")).to_have_count(
        Template.objects.filter(owner__isnull=True).count()
    )
    shot("gallery")

    card.get_by_role("button", name="Use template News cleaner").click()
    page.wait_for_url("**/designer/")
    copy = Pipeline.objects.exclude(pk=pipeline.pk).get(owner=alice)
    assert page.url.endswith(f"/pipelines/{copy.pk}/designer/")
    expect(page.locator(".dm-version")).to_have_text("v1")
    expect(canvas_node(page, "read")).to_be_visible()
    expect(canvas_node(page, "clean")).to_be_visible()
    expect(page.locator(".dm-canvas .react-flow__edge")).to_have_count(1)
    assert copy.versions.get(number=1).message == "Created from template News cleaner"
    shot("pipeline-from-template")


def test_log_in_and_create_a_pipeline_from_a_built_in_template(engine, page, alice):
    shot = page.screenshots
    page.goto("/pipelines/")
    page.wait_for_url("**/accounts/login/?next=/pipelines/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "not her password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    shot("login-refused")
    log_in(page, "alice")
    shot("pipeline-list-empty")

    page.click("#use-template")
    page.wait_for_url("**/templates/")
    template = Template.objects.get(slug="curate_annotate_or_synthesize")
    card = page.locator(f'.template-card[data-template="{template.pk}"]')
    expect(card.locator(".preview-node")).to_have_count(len(template.document["nodes"]))
    shot("gallery")

    card.get_by_role("button", name=f"Use template {template.name}").click()
    page.wait_for_url("**/designer/")
    pipeline = Pipeline.objects.get(owner=alice)
    assert pipeline.name == template.name
    for node in template.document["nodes"]:
        expect(canvas_node(page, node["key"])).to_be_visible()
    expect(page.locator(".dm-canvas .react-flow__edge")).to_have_count(len(template.document["edges"]))
    shot("designer")

    page.click(".topbar nav a[href='/pipelines/']")
    expect(page.locator(f'tr[data-pipeline="{pipeline.pk}"]')).to_contain_text(template.name)
    shot("pipeline-list")
