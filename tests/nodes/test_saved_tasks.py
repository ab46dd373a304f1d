"""Saved collection and cleaning tasks: the services, their use in a node config, the API
(`/api/saved-tasks/`), the admin form, and Data Collection's design-time checks."""

from __future__ import annotations

import pytest

from nodes import saved_tasks
from nodes.execution import NodeFailed
from nodes.models import SavedTask
from pipelines.graph_validation import validate_document

pytestmark = pytest.mark.django_db

URL_TASK = {"source": "http", "urls": ["https://data.example.org/a.jsonl"], "format": "jsonl"}
CLEANING_TASK = {"operators": [{"name": "exact_dedup"}]}


def errors_of(call) -> list[tuple[str, str]]:
    with pytest.raises(saved_tasks.SavedTaskInvalid) as invalid:
        call()
    return [(error["field"], error["message"]) for error in invalid.value.errors]


def fields_of(call) -> list[str]:
    return [field for field, _ in errors_of(call)]


# --- services -----------------------------------------------------------------------


def test_a_saved_task_is_checked_like_its_node_config(alice):
    def create(config, kind="collection"):
        return lambda: saved_tasks.create_saved_task(owner=alice, kind=kind, name="t", config=config)

    assert fields_of(create({"source": "files", "paths": "notes/*.md"})) == ["config.paths"]
    assert errors_of(create({"source": "http", "urls": ["https://ok.example/x", "ftp://nope/x"]})) == [
        ("config.urls[1]", "not an http(s) URL")
    ]
    assert errors_of(create({"source": "sql", "query": "SELECT 1"})) == [
        ("config.connection", "required when source is sql")
    ]
    assert fields_of(create({"paths": ["a.jsonl"]})) == ["config.source"]
    assert fields_of(create({"source": "files", "paths": ["a"], "colour": "red"})) == ["config.colour"]
    assert fields_of(create({"task": "other"})) == ["config.task"]
    assert fields_of(create({"source": "http", "urls": ["{{ params.url }}"]})) == ["config.urls[0]"]
    assert fields_of(create({"source": "http", "urls": ["https://x.example/"], "headers": {"Cookie": "s=1"}})) == [
        "config.headers.Cookie"
    ]
    assert fields_of(create([1, 2])) == ["config"]
    assert fields_of(create({"operators": [{"name": "no_such_operator"}]}, kind="cleaning")) == [
        "config.operators[0].name"
    ]
    assert fields_of(create(CLEANING_TASK, kind="scraping")) == ["kind"]
    assert not SavedTask.objects.exists()


def test_names_are_unique_per_owner_and_kind(alice, bob):
    saved_tasks.create_saved_task(owner=alice, kind="collection", name="news", config=URL_TASK)
    assert errors_of(
        lambda: saved_tasks.create_saved_task(owner=alice, kind="collection", name=" news ", config=URL_TASK)
    ) == [("name", "you already have a saved collection task named 'news'")]
    saved_tasks.create_saved_task(owner=alice, kind="cleaning", name="news", config=CLEANING_TASK)
    saved_tasks.create_saved_task(owner=bob, kind="collection", name="news", config=URL_TASK)
    assert fields_of(lambda: saved_tasks.create_saved_task(owner=alice, kind="cleaning", name="  ", config={})) == [
        "name"
    ]


def test_update_checks_again_and_keeps_the_kind(alice):
    task = saved_tasks.create_saved_task(owner=alice, kind="collection", name="news", config=URL_TASK)
    saved_tasks.create_saved_task(owner=alice, kind="collection", name="blogs", config=URL_TASK)
    assert fields_of(lambda: saved_tasks.update_saved_task(task, config={"source": "sql"})) == [
        "config.connection",
        "config.query",
    ]
    assert fields_of(lambda: saved_tasks.update_saved_task(task, name="blogs")) == ["name"]
    assert fields_of(lambda: saved_tasks.update_saved_task(task, kind="cleaning")) == ["kind"]
    saved_tasks.update_saved_task(task, name="world news", config={**URL_TASK, "format": "auto"})
    task.refresh_from_db()
    assert (task.name, task.config["format"]) == ("world news", "auto")


def test_expand_config_puts_the_node_keys_over_the_saved_config(alice, bob):
    saved_tasks.create_saved_task(owner=alice, kind="collection", name="news", config=URL_TASK)
    expanded = saved_tasks.expand_config(alice.pk, "collection", {"task": "news", "format": "auto", "max_bytes": 10})
    assert expanded == {**URL_TASK, "format": "auto", "max_bytes": 10}
    assert saved_tasks.expand_config(alice.pk, "collection", {"source": "files"}) == {"source": "files"}

    with pytest.raises(NodeFailed, match=r"^task: no saved collection task named 'sports'$"):
        saved_tasks.expand_config(alice.pk, "collection", {"task": "sports"})
    with pytest.raises(NodeFailed, match=r"^task: no saved collection task named 'news'$"):
        saved_tasks.expand_config(bob.pk, "collection", {"task": "news"})  # another owner's
    with pytest.raises(NodeFailed, match=r"^task: no saved cleaning task named 'news'$"):
        saved_tasks.expand_config(alice.pk, "cleaning", {"task": "news"})
    with pytest.raises(NodeFailed, match=r"^urls\[0\]: not an http\(s\) URL \(with saved collection task 'news'\)$"):
        saved_tasks.expand_config(alice.pk, "collection", {"task": "news", "urls": ["ftp://x/y"]})


# --- Data Collection design-time checks ---------------------------------------------


def collection_errors(config: dict) -> list[tuple[str, str]]:
    document = {
        "name": "p",
        "parameters": [{"name": "url", "type": "string"}],
        "nodes": [{"key": "grab", "type": "data_collection", "config": config}],
    }
    return [(error.field, error.message) for error in validate_document(document)]


def test_data_collection_config_errors_name_the_field(settings):
    settings.DATAMATE_SQL_CONNECTIONS = "warehouse=sqlite:////tmp/warehouse.db"
    settings.DATAMATE_COLLECT_MAX_BYTES = 1000
    prefix = "nodes[0].config"
    assert collection_errors({"source": "http", "urls": ["https://a.example/x", "a.example/y"]}) == [
        (f"{prefix}.urls[1]", "not an http(s) URL")
    ]
    assert collection_errors({"source": "sql", "query": "SELECT 1"}) == [
        (f"{prefix}.connection", "required when source is sql")
    ]
    assert collection_errors({"source": "sql", "connection": "crm", "query": "SELECT 1"}) == [
        (f"{prefix}.connection", "no connection named 'crm' (configured: warehouse)")
    ]
    assert collection_errors({"source": "sql", "connection": "warehouse", "query": "DELETE FROM t"}) == [
        (f"{prefix}.query", "only a SELECT (or WITH, VALUES, TABLE) query collects rows, not DELETE")
    ]
    assert collection_errors({"source": "http", "urls": ["https://a.example/"], "max_bytes": 5000}) == [
        (f"{prefix}.max_bytes", "at most 1000 (DATAMATE_COLLECT_MAX_BYTES)")
    ]
    assert [
        field
        for field, _ in collection_errors(
            {"source": "http", "urls": ["https://a.example/"], "headers": {"authorization": "x"}}
        )
    ] == [f"{prefix}.headers.authorization"]
    # Templates are checked when a run resolves them; a task supplies what is not inline.
    assert collection_errors({"source": "http", "urls": ["{{ params.url }}"]}) == []
    assert collection_errors({"task": "news", "format": "csv"}) == []
    assert collection_errors({"task": "news", "urls": ["file:///etc/passwd"]}) == [
        (f"{prefix}.urls[0]", "not an http(s) URL")
    ]


# --- API ----------------------------------------------------------------------------


def test_api_create_list_filter_change_delete(alice_api):
    created = alice_api.post(
        "/api/saved-tasks/",
        {"kind": "collection", "name": "news", "description": "wire feeds", "config": URL_TASK},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert {k: body[k] for k in ("kind", "name", "description", "config")} == {
        "kind": "collection",
        "name": "news",
        "description": "wire feeds",
        "config": URL_TASK,
    }
    alice_api.post("/api/saved-tasks/", {"kind": "cleaning", "name": "dedup", "config": CLEANING_TASK}, format="json")

    listing = alice_api.get("/api/saved-tasks/").json()["results"]
    assert [(t["kind"], t["name"]) for t in listing] == [("cleaning", "dedup"), ("collection", "news")]
    only_cleaning = alice_api.get("/api/saved-tasks/?kind=cleaning").json()["results"]
    assert [t["name"] for t in only_cleaning] == ["dedup"]

    url = f"/api/saved-tasks/{body['id']}/"
    changed = alice_api.patch(url, {"config": {**URL_TASK, "format": "auto"}}, format="json")
    assert changed.status_code == 200 and changed.json()["config"]["format"] == "auto"
    assert alice_api.delete(url).status_code == 204
    assert not SavedTask.objects.filter(pk=body["id"]).exists()


def test_api_bad_input_answers_400_naming_the_field(alice_api):
    def post(**body):
        response = alice_api.post("/api/saved-tasks/", body, format="json")
        assert response.status_code == 400, response.content
        return [error["field"] for error in response.json()["errors"]]

    assert post(kind="collection", name="x", config={"source": "files", "paths": 3}) == ["config.paths"]
    assert post(kind="collection", name="x", config={"source": "http", "urls": ["nope"]}) == ["config.urls[0]"]
    assert post(kind="painting", name="x", config={}) == ["kind"]
    assert post(kind="cleaning", config=CLEANING_TASK) == ["name"]
    assert post(kind="cleaning", name="x") == ["config"]
    alice_api.post("/api/saved-tasks/", {"kind": "cleaning", "name": "x", "config": CLEANING_TASK}, format="json")
    assert post(kind="cleaning", name="x", config=CLEANING_TASK) == ["name"]

    task = SavedTask.objects.get(name="x")
    changed = alice_api.patch(f"/api/saved-tasks/{task.pk}/", {"kind": "collection"}, format="json")
    assert changed.status_code == 400 and changed.json()["errors"][0]["field"] == "kind"
    listing = alice_api.get("/api/saved-tasks/?kind=painting")
    assert listing.status_code == 400 and listing.json()["errors"][0]["field"] == "kind"


def test_api_is_owner_scoped(alice, alice_api, bob_api, api_client):
    task = saved_tasks.create_saved_task(owner=alice, kind="cleaning", name="dedup", config=CLEANING_TASK)
    url = f"/api/saved-tasks/{task.pk}/"
    assert bob_api.get("/api/saved-tasks/").json()["results"] == []
    assert bob_api.get(url).status_code == 404
    assert bob_api.patch(url, {"name": "mine"}, format="json").status_code == 404
    assert bob_api.delete(url).status_code == 404
    assert api_client.get(url).status_code in (401, 403)
    assert alice_api.get(url).json()["name"] == "dedup"


# --- admin --------------------------------------------------------------------------


def test_admin_form_checks_like_the_api(client, staff, alice):
    client.force_login(staff)
    saved_tasks.create_saved_task(owner=alice, kind="collection", name="news", config=URL_TASK)
    add = "/admin/nodes/savedtask/add/"

    def post(**fields):
        return client.post(add, {"owner": alice.pk, "kind": "collection", "description": "", **fields})

    bad_config = post(name="feeds", config='{"source": "http", "urls": ["gopher://x"]}')
    assert bad_config.status_code == 200
    assert bad_config.context["adminform"].form.errors["config"] == ["config.urls[0]: not an http(s) URL"]
    taken = post(name="news", config='{"source": "files", "paths": ["a.jsonl"]}')
    assert "you already have a saved collection task named 'news'" in taken.context["adminform"].form.errors["name"]

    saved = post(name="feeds", config='{"source": "files", "paths": ["a.jsonl"]}')
    assert saved.status_code == 302
    task = SavedTask.objects.get(owner=alice, name="feeds")
    assert task.config == {"source": "files", "paths": ["a.jsonl"]}
    assert client.get(f"/admin/nodes/savedtask/{task.pk}/change/").status_code == 200
