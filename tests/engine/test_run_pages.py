"""Starting, cancelling and re-running from the pages, on a real worker: the forms call the
same engine functions as the API, and bad input comes back as a message naming the field."""

from django.test import Client
import pytest

from pipelines.engine.runs import start_run
from pipelines.models import NodeRun, Run
from tests.engine.conftest import node_states, wait_for_run
from tests.engine.test_runs_api import edge, step, wait_for_state
from tests.factories import create_pipeline, logged_in

pytestmark = pytest.mark.slow


def post_form(client: Client, page: str, form_id: str, action: str, **fields):
    """Submit a form shown on `page` the way a browser would: with the page's CSRF token."""
    html = client.get(page).content.decode()
    assert f'id="{form_id}"' in html, f"no form {form_id} on {page}"
    assert f'action="{action}"' in html
    return client.post(action, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value, **fields})


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


@pytest.fixture
def typed_pipeline(alice, tmp_path):
    doc = {
        "name": "typed",
        "parameters": [
            {"name": "limit", "type": "integer", "default": 3},
            {"name": "mode", "type": "enum", "choices": ["fast", "full"], "default": "fast"},
            {"name": "fail", "type": "boolean", "default": False},
        ],
        "nodes": [
            step("a", value="{{ params.limit }}", marker_file=str(tmp_path / "a.txt")),
            step("b", fail_always="{{ params.fail }}"),
        ],
        "edges": [edge("a", "b")],
    }
    return create_pipeline(alice, doc)


def test_run_now_starts_a_run_with_typed_parameters(engine, alice, typed_pipeline):
    client = logged_in(alice, enforce_csrf_checks=True)
    page = f"/pipelines/{typed_pipeline.pk}/runs/"
    start = f"/pipelines/{typed_pipeline.pk}/runs/start/"
    html = client.get(page).content.decode()
    assert 'name="param-limit"' in html and 'type="number"' in html
    assert '<option value="full">' in html

    response = post_form(client, page, "start-run", start, **{"param-limit": "7", "param-mode": "full"})
    run = Run.objects.get(pipeline=typed_pipeline)
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.params == {"limit": 7, "mode": "full", "fail": False}
    assert run.trigger == "manual" and run.created_by == alice
    run = wait_for_run(run)
    assert run.state == "succeeded", run.error
    assert NodeRun.objects.get(run=run, node_key="a").output["value"] == 7


def test_run_now_with_bad_input_names_the_parameter_and_starts_nothing(engine, alice, typed_pipeline):
    client = logged_in(alice, enforce_csrf_checks=True)
    page = f"/pipelines/{typed_pipeline.pk}/runs/"
    start = f"/pipelines/{typed_pipeline.pk}/runs/start/"
    response = post_form(client, page, "start-run", start, **{"param-limit": "seven"})
    assert response.status_code == 302 and response["Location"] == page
    assert messages_of(client.get(page)) == ["params.limit: must be an integer"]

    post_form(client, page, "start-run", start, **{"param-mode": "slow"})
    assert messages_of(client.get(page)) == ["params.mode: must be one of fast, full"]
    assert not Run.objects.filter(pipeline=typed_pipeline).exists()


def test_cancel_button_cancels_a_running_run(engine, alice):
    doc = {
        "name": "slow",
        "nodes": [step("slow", progress_steps=20, sleep=4), step("after")],
        "edges": [edge("slow", "after")],
    }
    run = start_run(create_pipeline(alice, doc), user=alice)
    wait_for_state(NodeRun.objects.get(run=run, node_key="slow"), "running")
    client = logged_in(alice, enforce_csrf_checks=True)

    response = post_form(client, f"/runs/{run.pk}/", "cancel-run", f"/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.state == "cancelled"
    assert node_states(run) == {"slow": "cancelled", "after": "cancelled"}
    page = client.get(f"/runs/{run.pk}/")
    assert messages_of(page) == [f"Run #{run.pk} cancelled."]
    # A finished run offers re-run, not cancel.
    html = page.content.decode()
    assert 'id="cancel-run"' not in html
    assert '<details id="rerun">' in html
    assert "the failed and unrun nodes (after, slow)" in html


def test_rerun_form_reruns_from_the_failed_node_with_edited_parameters(engine, alice, typed_pipeline, tmp_path):
    original = wait_for_run(start_run(typed_pipeline, {"fail": True}, user=alice))
    assert node_states(original) == {"a": "succeeded", "b": "failed"}
    client = logged_in(alice, enforce_csrf_checks=True)
    html = client.get(f"/runs/{original.pk}/").content.decode()
    assert "the failed and unrun nodes (b)" in html

    # The checkbox left unticked turns `fail` off; the default choice re-runs the failed node.
    response = post_form(
        client,
        f"/runs/{original.pk}/",
        "rerun",
        f"/runs/{original.pk}/rerun/",
        **{"param-limit": "3", "param-mode": "fast"},
    )
    rerun = Run.objects.get(rerun_of=original)
    assert response["Location"] == f"/runs/{rerun.pk}/"
    assert rerun.rerun_from == "b" and rerun.params["fail"] is False
    rerun = wait_for_run(rerun)
    assert rerun.state == "succeeded", rerun.error
    # `a` kept the original run's result: it was not executed again.
    assert (tmp_path / "a.txt").read_text().splitlines() == [f"{original.pk}|a||1"]

    bad = post_form(client, f"/runs/{original.pk}/", "rerun", f"/runs/{original.pk}/rerun/", from_node="nope")
    assert bad["Location"] == f"/runs/{original.pk}/"
    assert messages_of(client.get(f"/runs/{original.pk}/")) == ["from_node: no top-level node 'nope'"]


def test_other_users_cannot_start_cancel_or_rerun(engine, alice, bob, typed_pipeline):
    run = wait_for_run(start_run(typed_pipeline, user=alice))
    client = logged_in(bob, enforce_csrf_checks=True)
    client.get("/pipelines/")
    token = client.cookies["csrftoken"].value
    for url in (f"/pipelines/{typed_pipeline.pk}/runs/start/", f"/runs/{run.pk}/cancel/", f"/runs/{run.pk}/rerun/"):
        assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 404
    assert Run.objects.filter(pipeline=typed_pipeline).count() == 1


def test_actions_need_post_and_a_csrf_token(engine, alice, typed_pipeline):
    client = logged_in(alice, enforce_csrf_checks=True)
    url = f"/pipelines/{typed_pipeline.pk}/runs/start/"
    assert client.get(url).status_code == 405
    assert client.post(url, {}).status_code == 403
    assert not Run.objects.filter(pipeline=typed_pipeline).exists()
