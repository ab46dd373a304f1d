"""The designer page and the "New pipeline" button, without a browser: access, what the
page hands the bundle, and the links into it."""

import json
import re

from django.test import Client

from pipelines.models import Pipeline
from tests.factories import create_pipeline, logged_in


def page_config(html: str) -> dict:
    match = re.search(r'<script id="designer-config" type="application/json">(.*?)</script>', html, re.DOTALL)
    assert match, "the page has no designer-config"
    return json.loads(match.group(1))


def test_designer_page_loads_the_bundle_with_the_pipelines_urls(alice):
    pipeline = create_pipeline(alice)
    page = logged_in(alice).get(f"/pipelines/{pipeline.pk}/designer/")
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r'<script type="module" src="/static/designer/designer\.js\?v=[0-9a-f]{12}-[0-9a-f]{12}"', html)
    assert re.search(r'href="/static/designer/designer\.css\?v=', html)
    config = page_config(html)
    assert config["pipeline"] == pipeline.pk
    assert config["urls"] == {
        "graph": f"/api/pipelines/{pipeline.pk}/graph/",
        "runs": f"/api/pipelines/{pipeline.pk}/runs/",
        "nodeTypes": "/api/node-types/",
        "runPage": "/runs/{id}/",
        "runSocket": "/ws/runs/{id}/",
    }
    assert config["csrfToken"]
    assert config["parameterSchema"]["items"]["properties"]["type"]["enum"]
    assert "retries" in config["settingsSchema"]["properties"]


def test_designer_needs_a_login(alice):
    pipeline = create_pipeline(alice)
    page = Client().get(f"/pipelines/{pipeline.pk}/designer/")
    assert page.status_code == 302
    assert "login" in page["Location"]


def test_another_users_pipeline_is_not_found(alice, bob):
    pipeline = create_pipeline(alice)
    assert logged_in(bob).get(f"/pipelines/{pipeline.pk}/designer/").status_code == 404
    assert logged_in(bob).get("/pipelines/999999/designer/").status_code == 404


def test_new_pipeline_creates_an_empty_pipeline_and_opens_its_designer(alice):
    client = logged_in(alice)
    assert client.get("/pipelines/new/").status_code == 405
    response = client.post("/pipelines/new/")
    pipeline = Pipeline.objects.get(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == f"/pipelines/{pipeline.pk}/designer/"
    assert (pipeline.name, pipeline.version, pipeline.nodes.count()) == ("Untitled pipeline", 1, 0)


def test_pipeline_list_offers_new_pipeline_and_a_design_link_per_pipeline(alice):
    pipeline = create_pipeline(alice)
    html = logged_in(alice).get("/pipelines/").content.decode()
    assert 'action="/pipelines/new/"' in html and "New pipeline" in html
    assert f'href="/pipelines/{pipeline.pk}/designer/"' in html
