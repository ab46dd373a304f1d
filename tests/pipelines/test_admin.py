"""The Django admin for pipelines, as a staff user works with it."""

from __future__ import annotations

import json

from django.test import Client
import pytest

from datasets.models import Dataset
from pipelines import services
from pipelines.models import Node, Pipeline, PipelineVersion, Template
from tests.factories import create_pipeline, create_user, example_document, node

# --- helpers ------------------------------------------------------------------------


@pytest.fixture
def admin_client(staff):
    client = Client()
    client.force_login(staff)
    client.raise_request_exception = False  # a server error is a 500 answer, as a browser sees it
    return client


@pytest.fixture
def pipeline(alice):
    return create_pipeline(alice)


def change_url(pipeline) -> str:
    return f"/admin/pipelines/pipeline/{pipeline.pk}/change/"


def form_values(response) -> dict[str, str]:
    """Everything the change form on `response` would submit untouched: main form and every inline."""
    data: dict[str, str] = {}

    def add(form):
        for name in form.fields:
            value = form[name].value()  # the initial value, prepared for the widget
            data[form.add_prefix(name)] = "" if value is None else str(value)

    add(response.context["adminform"].form)
    for inline in response.context.get("inline_admin_formsets", []):
        formset = inline.formset
        add(formset.management_form)
        for form in formset.forms:
            add(form)
    return data


def current_graph(pipeline) -> dict:
    return services.current_document(Pipeline.objects.get(pk=pipeline.pk))


def relabel(document: dict, key: str, label: str) -> dict:
    next(n for n in document["nodes"] if n["key"] == key)["label"] = label
    return document


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def run_action(client, url: str, action: str, objects) -> list[str]:
    response = client.post(
        url, {"action": action, "_selected_action": [obj.pk for obj in objects], "index": 0}, follow=True
    )
    assert response.status_code == 200
    return messages_of(response)


# --- pages render -------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, get_object",
    [
        ("pipelines/pipeline", lambda p: p),
        ("pipelines/node", lambda p: p.nodes.get(key="clean")),
        ("pipelines/edge", lambda p: p.edges.first()),
        ("pipelines/pipelineversion", lambda p: p.versions.get(number=1)),
        ("pipelines/template", lambda p: Template.objects.get(slug="curate_annotate_or_synthesize")),
        ("datasets/dataset", lambda p: Dataset.objects.create(name="corpus", owner=p.owner)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_changelist_and_change_pages_render(admin_client, pipeline, model, get_object):
    obj = get_object(pipeline)

    changelist = admin_client.get(f"/admin/{model}/")
    change = admin_client.get(f"/admin/{model}/{obj.pk}/change/")

    assert changelist.status_code == 200
    assert obj.pk in {o.pk for o in changelist.context["cl"].result_list}
    assert change.status_code == 200
    assert change.context["original"].pk == obj.pk


def test_pipeline_version_page_shows_its_document(admin_client, pipeline):
    version = pipeline.versions.get(number=1)

    response = admin_client.get(f"/admin/pipelines/pipelineversion/{version.pk}/change/")

    assert response.status_code == 200
    assert "Annotate task type" in response.content.decode()


def test_pipeline_change_page_shows_the_document_and_inline_nodes(admin_client, pipeline):
    response = admin_client.get(change_url(pipeline))

    assert response.status_code == 200
    content = response.content.decode()
    assert '<textarea name="document"' in content
    document = json.loads(response.context["adminform"].form["document"].value())
    assert document == {k: example_document()[k] for k in ("parameters", "nodes", "edges")}
    formsets = {inline.formset.prefix: inline.formset for inline in response.context["inline_admin_formsets"]}
    assert [form.instance.key for form in formsets["nodes"].forms] == [n["key"] for n in example_document()["nodes"]]
    assert len(formsets["edges"].forms) == len(example_document()["edges"])
    assert [form.instance.number for form in formsets["versions"].forms] == [1]
    assert 'id="nodes-group"' in content


# --- editing ------------------------------------------------------------------------


def test_editing_the_document_in_the_admin_creates_a_version(admin_client, staff, pipeline):
    page = admin_client.get(change_url(pipeline))
    data = form_values(page)
    document = relabel(json.loads(data["document"]), "clean", "Clean it well")
    data.update(document=json.dumps(document), message="Relabelled in admin", _save="Save")

    response = admin_client.post(change_url(pipeline), data)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    version = PipelineVersion.objects.get(pipeline=pipeline, number=2)
    assert version.author == staff
    assert version.message == "Relabelled in admin"
    assert current_graph(pipeline) == relabel(example_document(), "clean", "Clean it well")
    assert Pipeline.objects.get(pk=pipeline.pk).version == 2


def test_saving_the_admin_form_unchanged_writes_no_version(admin_client, pipeline):
    data = {**form_values(admin_client.get(change_url(pipeline))), "_save": "Save"}

    response = admin_client.post(change_url(pipeline), data)

    assert response.status_code == 302
    assert list(pipeline.versions.values_list("number", flat=True)) == [1]


def test_renaming_in_the_admin_is_a_version(admin_client, staff, pipeline):
    data = {**form_values(admin_client.get(change_url(pipeline))), "name": "Renamed in admin", "_save": "Save"}

    assert admin_client.post(change_url(pipeline), data).status_code == 302

    assert current_graph(pipeline)["name"] == "Renamed in admin"
    assert pipeline.versions.get(number=2).author == staff


def test_an_invalid_document_shows_the_error_and_saves_nothing(admin_client, pipeline):
    data = form_values(admin_client.get(change_url(pipeline)))
    document = json.loads(data["document"])
    next(n for n in document["nodes"] if n["key"] == "clean")["type"] = "no_such_type"
    data.update(document=json.dumps(document), _save="Save")

    response = admin_client.post(change_url(pipeline), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["document"]
    index = [n["key"] for n in document["nodes"]].index("clean")
    expected = f"clean: nodes[{index}].type: unknown node type 'no_such_type'"
    assert expected in errors
    assert "unknown node type" in response.content.decode()
    assert list(pipeline.versions.values_list("number", flat=True)) == [1]
    assert current_graph(pipeline) == example_document()


def test_a_document_that_is_not_json_shows_an_error(admin_client, pipeline):
    data = {**form_values(admin_client.get(change_url(pipeline))), "document": "{not json", "_save": "Save"}

    response = admin_client.post(change_url(pipeline), data)

    assert response.status_code == 200
    assert "document" in response.context["adminform"].form.errors
    assert current_graph(pipeline) == example_document()


def test_adding_a_pipeline_in_the_admin(admin_client, staff, alice):
    page = admin_client.get("/admin/pipelines/pipeline/add/")
    assert page.status_code == 200
    data = form_values(page)
    graph = {"nodes": [node("input", "input_dataset")], "edges": [], "parameters": []}
    data.update(name="Made in admin", owner=str(alice.pk), document=json.dumps(graph), _save="Save")

    response = admin_client.post("/admin/pipelines/pipeline/add/", data)

    assert response.status_code == 302
    created = Pipeline.objects.get(name="Made in admin")
    assert created.owner == alice
    assert created.version == 1
    assert created.versions.get().author == staff
    assert [n.key for n in created.nodes.all()] == ["input"]


def test_changing_the_owner_in_the_admin(admin_client, pipeline, bob):
    data = {**form_values(admin_client.get(change_url(pipeline))), "owner": str(bob.pk), "_save": "Save"}

    response = admin_client.post(change_url(pipeline), data)

    assert response.status_code == 302
    assert Pipeline.objects.get(pk=pipeline.pk).owner == bob


def test_editing_a_template_document_in_the_admin_is_validated(admin_client, alice):
    template = Template.objects.create(name="Mine", owner=alice, document=example_document())
    url = f"/admin/pipelines/template/{template.pk}/change/"
    data = {**form_values(admin_client.get(url)), "_save": "Save"}
    broken = example_document()
    next(n for n in broken["nodes"] if n["key"] == "annotate")["config"]["labels"] = []

    refused = admin_client.post(url, {**data, "document": json.dumps(broken)})
    accepted = admin_client.post(url, {**data, "document": json.dumps(relabel(example_document(), "clean", "T"))})

    assert refused.status_code == 200
    assert any("annotate: nodes[0].config.labels" in e for e in refused.context["adminform"].form.errors["document"])
    assert accepted.status_code == 302
    template.refresh_from_db()
    assert template.document == relabel(example_document(), "clean", "T")


# --- history ------------------------------------------------------------------------


def test_history_page_lists_the_versions(admin_client, staff, pipeline):
    services.save_graph(
        pipeline, relabel(example_document(), "clean", "Second version"), author=staff, message="second"
    )

    response = admin_client.get(f"/admin/pipelines/pipeline/{pipeline.pk}/history/")

    assert response.status_code == 200
    records = list(response.context["page_obj"])
    assert sorted(r.pipeline_version for r in records) == [1, 2]
    content = response.content.decode()
    assert "second" in content and "Imported" in content
    assert staff.username in content and "alice" in content


def test_reverting_from_the_history_page_restores_that_versions_graph(admin_client, staff, pipeline):
    second = relabel(example_document(), "clean", "Second version")
    services.save_graph(pipeline, {**second, "name": "Second name"}, author=staff)
    first = pipeline.history.get(pipeline_version=1)
    url = f"/admin/pipelines/pipeline/{pipeline.pk}/history/{first.history_id}/"

    page = admin_client.get(url)
    assert page.status_code == 200
    assert page.context["adminform"].form["name"].value() == example_document()["name"]
    shown = json.loads(page.context["adminform"].form["document"].value())
    assert shown["nodes"] == example_document()["nodes"]

    response = admin_client.post(url, {**form_values(page), "_save": "Save"})

    assert response.status_code == 302
    assert current_graph(pipeline) == example_document()


# --- actions ------------------------------------------------------------------------


def test_validate_action_reports_each_pipeline(admin_client, alice):
    good = create_pipeline(alice, name="Good one")
    bad = create_pipeline(alice, name="Bad one")
    Node.objects.filter(pipeline=bad, key="annotate").update(config={"labels": []})

    messages = run_action(admin_client, "/admin/pipelines/pipeline/", "validate_pipelines", [good, bad])

    assert "Good one: valid" in messages
    bad_messages = [m for m in messages if m.startswith("Bad one:")]
    assert len(bad_messages) == 1
    assert "1 problem(s)" in bad_messages[0]
    assert "annotate: nodes[0].config.labels" in bad_messages[0]
    # Validating writes nothing.
    assert good.versions.count() == 1 and bad.versions.count() == 1


def test_restore_action_writes_a_new_version(admin_client, staff, pipeline):
    services.save_graph(pipeline, relabel(example_document(), "clean", "v2"), author=pipeline.owner)
    first = pipeline.versions.get(number=1)

    messages = run_action(admin_client, "/admin/pipelines/pipelineversion/", "restore", [first])

    restored = pipeline.versions.get(number=3)
    assert restored.author == staff
    assert current_graph(pipeline) == example_document()
    assert any("restored v1 as v3" in m for m in messages)


def test_instantiate_action_creates_a_pipeline(admin_client, staff):
    template = Template.objects.get(owner__isnull=True, slug="synthesize_in_rounds")

    messages = run_action(admin_client, "/admin/pipelines/template/", "instantiate", [template])

    created = Pipeline.objects.get(owner=staff)
    assert created.version == 1
    assert current_graph(created) == template.document
    assert any(f"#{created.pk}" in m for m in messages)


# --- access -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/", "/admin/pipelines/pipeline/", "/admin/pipelines/template/"])
def test_non_staff_is_sent_to_the_admin_login(db, url):
    client = Client()
    client.force_login(create_user("carol"))

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_cannot_post_to_the_change_form(alice, pipeline):
    client = Client()
    client.force_login(alice)

    response = client.post(change_url(pipeline), {"name": "hijacked", "document": "{}"})

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert current_graph(pipeline) == example_document()
