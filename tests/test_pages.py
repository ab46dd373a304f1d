"""Server-rendered pages: the pipeline list, a pipeline's runs and the live run page."""

import json
import re

from django.test import Client
import pytest

from pipelines.engine.runs import start_run
from pipelines.engine.states import NodeState, RunState
from pipelines.models import NodeRun, NodeRunLog, Run
from tests.factories import create_pipeline


def step(key, **config):
    return {"key": key, "type": "test_step", "config": config}


@pytest.fixture
def run(alice):
    """A run with one node finished, one running and one pending, and a log line.

    Under the `db` fixture nothing is committed, so start_run enqueues nothing: the states
    are set here, the way the engine would have left them."""
    doc = {
        "name": "Curate corpus",
        "nodes": [step("fetch"), step("clean"), step("publish")],
        "edges": [
            {"source": "fetch", "source_handle": "out", "target": "clean"},
            {"source": "clean", "source_handle": "out", "target": "publish"},
        ],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    rows = {row.node_key: row for row in NodeRun.objects.filter(run=run)}
    NodeRun.objects.filter(pk=rows["fetch"].pk).update(state=NodeState.SUCCEEDED, records_out=120, progress=1)
    NodeRun.objects.filter(pk=rows["clean"].pk).update(state=NodeState.RUNNING, records_in=120, progress=0.5)
    NodeRunLog.objects.create(node_run=rows["fetch"], message="fetched 120 records <script>alert(1)</script>")
    return run


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pipeline_list_shows_own_pipelines_with_their_last_run(alice, bob, run):
    create_pipeline(bob, {"name": "Bob's secret", "nodes": [step("x")]})
    page = logged_in(alice).get("/pipelines/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Curate corpus" in html
    assert f"v{run.pipeline.version}" in html
    assert f'href="/runs/{run.pk}/"' in html
    assert "state-running" in html
    assert "Bob&#x27;s secret" not in html and "Bob's secret" not in html


def test_run_list_shows_the_runs_of_a_pipeline(alice, run):
    page = logged_in(alice).get(f"/pipelines/{run.pipeline_id}/runs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"#{run.pk}" in html
    assert f'href="/runs/{run.pk}/"' in html
    assert "state-running" in html
    assert "1 / 3 finished" in html


def test_run_page_renders_nodes_states_and_logs(alice, run):
    page = logged_in(alice).get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    for key in ("fetch", "clean", "publish"):
        assert f'<td class="key">{key}</td>' in html
    for state in ("succeeded", "running", "pending"):
        assert f'<span class="badge state-{state}">{state}</span>' in html
    assert 'style="width: 50%"' in html  # clean's progress bar
    # Log lines are escaped, never markup.
    assert "fetched 120 records &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html
    # The live script gets its websocket address from a JSON block.
    live = re.search(r'<script id="run-live" type="application/json">(.*?)</script>', html).group(1)
    assert json.loads(live) == {"run": run.pk, "ws": f"/ws/runs/{run.pk}/"}
    assert "/static/js/run.js" in html and "/static/css/app.css" in html


def test_run_page_shows_a_finished_run(alice, run):
    NodeRun.objects.filter(run=run).update(state=NodeState.SUCCEEDED, progress=1)
    Run.objects.filter(pk=run.pk).update(state=RunState.FAILED, error="node clean failed: boom")
    html = logged_in(alice).get(f"/runs/{run.pk}/").content.decode()
    assert '<span class="badge state-failed">failed</span>' in html
    assert "node clean failed: boom" in html


def test_staff_see_every_run(staff, run):
    assert logged_in(staff).get(f"/runs/{run.pk}/").status_code == 200
    assert "Curate corpus" in logged_in(staff).get("/pipelines/").content.decode()


@pytest.mark.parametrize("path", ["/runs/{run}/", "/pipelines/{pipeline}/runs/", "/runs/999999/"])
def test_other_users_get_404(bob, run, path):
    response = logged_in(bob).get(path.format(run=run.pk, pipeline=run.pipeline_id))
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/pipelines/", "/pipelines/{pipeline}/runs/", "/runs/{run}/"])
def test_anonymous_users_are_sent_to_the_login_page(run, path):
    path = path.format(run=run.pk, pipeline=run.pipeline_id)
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


@pytest.mark.parametrize("path", ["/static/js/run.js", "/static/css/app.css"])
def test_page_assets_are_served(db, path):
    response = Client().get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content if response.streaming else [response.content])
