"""Runs in the Django admin: read-only pages, cancel and re-run actions."""

from django.test import Client

from pipelines.engine.runs import start_run
from pipelines.models import NodeRun, Run
from tests.engine.conftest import wait_for_run
from tests.engine.test_basic_runs import step
from tests.factories import create_pipeline
from tests.waiting import wait_until


def test_run_pages_and_actions(engine, alice, staff):
    client = Client()
    client.force_login(staff)
    pipeline = create_pipeline(alice, {"name": "admin", "nodes": [step("slow", sleep=10, progress_steps=100)]})
    run = start_run(pipeline, user=alice)
    wait_until(lambda: NodeRun.objects.get(run=run).state == "running", what="the node to run")
    node_run = NodeRun.objects.get(run=run)
    for url in [
        "/admin/pipelines/run/",
        f"/admin/pipelines/run/{run.pk}/change/",
        "/admin/pipelines/noderun/",
        f"/admin/pipelines/noderun/{node_run.pk}/change/",
        "/admin/pipelines/noderunlog/",
        "/admin/pipelines/noderesultcache/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
    assert b"slow" in client.get(f"/admin/pipelines/run/{run.pk}/change/").content

    response = client.post("/admin/pipelines/run/", {"action": "cancel", "_selected_action": [run.pk]}, follow=True)
    # The admin capitalises messages.
    assert f"Run {run.pk}: cancelled".encode() in response.content
    assert wait_for_run(run).state == "cancelled"
    response = client.post("/admin/pipelines/run/", {"action": "cancel", "_selected_action": [run.pk]}, follow=True)
    assert f"Run {run.pk} already cancelled".encode() in response.content

    response = client.post(
        "/admin/pipelines/run/", {"action": "rerun_from_failed", "_selected_action": [run.pk]}, follow=True
    )
    new = Run.objects.exclude(pk=run.pk).get()
    assert f"re-run as run {new.pk}".encode() in response.content
    assert new.rerun_of_id == run.pk
