"""Server-rendered pages: the pipeline list, a pipeline's runs, the live run page and the
template gallery."""

from datetime import UTC, timedelta
import json
import re

from django.test import Client
import pytest

from pipelines import schedules, services
from pipelines.engine.runs import start_run
from pipelines.engine.states import NodeState, RunState
from pipelines.graph_preview import graph_preview
from pipelines.models import NodeRun, NodeRunLog, Pipeline, Run, Template
from tests.factories import create_pipeline, edge, logged_in, node


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
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize("path", ["/static/js/run.js", "/static/css/app.css"])
def test_page_assets_are_served(db, path):
    response = Client().get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content if response.streaming else [response.content])


# --- pipeline list: search, next scheduled run ----------------------------------------


def test_pipeline_list_searches_names_and_descriptions(alice):
    create_pipeline(alice, {"name": "Curate news", "nodes": [step("x")]})
    create_pipeline(alice, {"name": "Synthesize maths", "description": "fractions for pupils", "nodes": [step("x")]})
    client = logged_in(alice)

    html = client.get("/pipelines/?q=news").content.decode()
    assert "Curate news" in html and "Synthesize maths" not in html
    assert 'value="news"' in html  # the search box keeps the query
    html = client.get("/pipelines/?q=FRACTIONS").content.decode()
    assert "Synthesize maths" in html and "Curate news" not in html
    html = client.get("/pipelines/?q=nothing-like-it").content.decode()
    assert "No pipeline matches “nothing-like-it”" in html


def test_pipeline_list_shows_the_next_scheduled_run(alice):
    scheduled = create_pipeline(alice, {"name": "Nightly", "nodes": [step("x")]})
    create_pipeline(alice, {"name": "By hand", "nodes": [step("x")]})
    schedules.create_schedule(scheduled, cron="0 2 * * *", timezone="UTC")
    schedules.create_schedule(scheduled, cron="0 0 12 * * ?", timezone="Europe/Paris")
    schedules.create_schedule(scheduled, cron="* * * * *", enabled=False)  # off: never the next one
    soonest = min(
        schedules.next_runs(schedule, count=1)[0] for schedule in scheduled.schedules.filter(enabled=True)
    ).astimezone(UTC)

    html = logged_in(alice).get("/pipelines/").content.decode()
    rows = dict(re.findall(r'<tr data-pipeline="(\d+)">(.*?)</tr>', html, re.DOTALL))
    nightly = re.search(r'<td class="next-run">(.*?)</td>', rows[str(scheduled.pk)], re.DOTALL).group(1)
    assert re.search(r">in \d+\xa0(hour|minute)", nightly), nightly
    assert soonest.strftime("%Y-%m-%d %H:%M") in nightly  # in the site's time zone, UTC
    by_hand = next(row for key, row in rows.items() if key != str(scheduled.pk))
    assert "not scheduled" in by_hand


def test_pipeline_list_links_to_the_designer_the_runs_and_the_templates(alice):
    pipeline = create_pipeline(alice, {"name": "Linked", "nodes": [step("x")]})
    html = logged_in(alice).get("/pipelines/").content.decode()
    assert f'href="/pipelines/{pipeline.pk}/designer/"' in html
    assert f'href="/pipelines/{pipeline.pk}/runs/"' in html
    assert 'id="use-template" href="/templates/"' in html
    assert 'href="/datasets/"' in html  # the nav


def test_run_list_shows_trigger_duration_schedule_and_links(alice, run):
    schedule = schedules.create_schedule(run.pipeline, cron="30 4 * * *")
    started = run.created_at
    Run.objects.filter(pk=run.pk).update(
        trigger=Run.Trigger.SCHEDULE,
        schedule=schedule,
        started_at=started,
        finished_at=started + timedelta(seconds=75),
        state=RunState.SUCCEEDED,
    )
    html = logged_in(alice).get(f"/pipelines/{run.pipeline_id}/runs/").content.decode()
    assert "state-succeeded" in html
    assert "schedule" in html and "30 4 * * *" in html
    assert "1 m 15 s" in html
    assert f'href="/runs/{run.pk}/"' in html
    assert f'href="/pipelines/{run.pipeline_id}/designer/"' in html


# --- template gallery -----------------------------------------------------------------


def test_gallery_lists_built_in_and_own_templates_with_a_preview(alice, bob):
    pipeline = create_pipeline(alice, {"name": "Mine", "nodes": [step("x")]})
    services.save_as_template(pipeline, owner=alice, name="Alice's cleaner", description="For news")
    services.save_as_template(pipeline, owner=bob, name="Bob's private one")

    html = logged_in(alice).get("/templates/").content.decode()
    built_in = re.search(r'<section class="template-group" id="templates-built_in">(.*?)</section>', html, re.DOTALL)
    own = re.search(r'<section class="template-group" id="templates-own">(.*?)</section>', html, re.DOTALL)
    for template in Template.objects.filter(owner__isnull=True):
        assert f"<h3>{template.name}</h3>" in built_in.group(1)
    assert "Alice&#x27;s cleaner" in own.group(1) and "For news" in own.group(1)
    assert "Bob" not in html
    # Every card draws its graph: one box per node, one curve per edge.
    assert html.count('<svg class="graph-preview"') == Template.objects.exclude(owner=bob).count()
    example = Template.objects.get(slug="curate_annotate_or_synthesize")
    card = re.search(rf'<li class="template-card" data-template="{example.pk}">(.*?)</li>', html, re.DOTALL).group(1)
    assert card.count('class="preview-node') == len(example.document["nodes"])
    assert card.count('class="preview-edge"') == len(example.document["edges"])
    assert "category-logic" in card and "category-data" in card


def test_use_template_creates_a_pipeline_and_opens_the_designer(alice):
    template = Template.objects.get(slug="clean_and_deduplicate")
    response = logged_in(alice).post(f"/templates/{template.pk}/use/")
    pipeline = Pipeline.objects.get(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == f"/pipelines/{pipeline.pk}/designer/"
    assert pipeline.name == template.name
    assert services.current_document(pipeline)["nodes"] == template.document["nodes"]


def test_another_users_template_cannot_be_used_or_deleted(alice, bob):
    template = services.save_as_template(
        create_pipeline(alice, {"name": "A", "nodes": [step("x")]}), owner=alice, name="A"
    )
    client = logged_in(bob)
    assert client.post(f"/templates/{template.pk}/use/").status_code == 404
    assert client.post(f"/templates/{template.pk}/delete/").status_code == 404
    assert not Pipeline.objects.filter(owner=bob).exists()
    assert Template.objects.filter(pk=template.pk).exists()


def test_own_templates_can_be_deleted_built_in_ones_cannot(alice):
    template = services.save_as_template(
        create_pipeline(alice, {"name": "A", "nodes": [step("x")]}), owner=alice, name="A"
    )
    built_in = Template.objects.filter(owner__isnull=True).first()
    client = logged_in(alice)
    assert client.post(f"/templates/{built_in.pk}/delete/").status_code == 404
    response = client.post(f"/templates/{template.pk}/delete/", follow=True)
    assert "Template A deleted." in response.content.decode()
    assert not Template.objects.filter(pk=template.pk).exists()
    assert Template.objects.filter(pk=built_in.pk).exists()


def test_graph_preview_places_loop_children_inside_their_loop():
    document = {
        "nodes": [
            node("rounds", "loop", position={"x": 100, "y": 100}),
            node("inner", "wait", parent="rounds", position={"x": 40, "y": 60}),
            node("far", "wait", parent="rounds", position={"x": 400, "y": 60}),
            node("save", "output_dataset", position={"x": 1000, "y": 100}, label="A rather long label for a node"),
        ],
        "edges": [edge("rounds", "save"), edge("inner", "far")],
    }
    preview = graph_preview(document)
    [loop] = preview["containers"]
    boxes = {box["key"]: box for box in preview["nodes"]}
    assert (boxes["inner"]["x"], boxes["inner"]["y"]) == (140, 160)  # relative to the Loop
    assert boxes["far"]["x"] + boxes["far"]["width"] < loop["x"] + loop["width"]
    assert boxes["far"]["y"] + boxes["far"]["height"] < loop["y"] + loop["height"]
    assert boxes["save"]["label"] == "A rather long label f…"
    assert len(preview["edges"]) == 2
    assert graph_preview({"nodes": []}) is None
