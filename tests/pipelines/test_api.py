"""The pipelines REST API, as a client uses it: DRF's APIClient against the test database."""

from __future__ import annotations

import copy
import json

import pytest
from rest_framework.test import APIClient

from pipelines import services
from pipelines.models import Node, Pipeline, PipelineVersion, Template
from tests.factories import (
    BUILTIN_NODE_TYPES,
    create_pipeline,
    create_user,
    edge,
    example_document,
    linear_document,
    node,
)

PASSWORD = "pw-for-tests-1"  # the factories' default password

BUILTIN_SLUGS = {"clean_and_deduplicate", "curate_annotate_or_synthesize", "synthesize_in_rounds"}


# --- helpers ------------------------------------------------------------------------


def error_fields(response) -> set[str]:
    """The fields a 400 names (the shared {"errors": [{field, message}]} shape)."""
    return {error["field"] for error in response.json()["errors"]}


def pipeline_url(pipeline, suffix: str = "") -> str:
    return f"/api/pipelines/{getattr(pipeline, 'pk', pipeline)}/{suffix}"


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def find_node(document: dict, key: str) -> dict:
    return next(n for n in document["nodes"] if n["key"] == key)


def node_index(document: dict, key: str) -> int:
    return next(i for i, n in enumerate(document["nodes"]) if n["key"] == key)


def edited_example() -> dict:
    """The example document with the annotation's labels and the condition's label changed."""
    document = example_document()
    find_node(document, "annotate")["config"]["labels"] = ["question", "dialogue", "instruction", "other"]
    find_node(document, "enough")["label"] = "At least min_records?"
    return document


def put_graph(client, pipeline, document: dict, **extra):
    return client.put(pipeline_url(pipeline, "graph/"), document, format="json", **extra)


def version_numbers(client, pipeline) -> list[int]:
    response = client.get(pipeline_url(pipeline, "versions/"))
    assert response.status_code == 200
    return [v["number"] for v in response.json()["results"]]


def state_of(pipeline_id: int) -> dict:
    """What a user of the pipeline sees: its row, its graph and its versions (from the database)."""
    pipeline = Pipeline.objects.get(pk=pipeline_id)
    return {
        "name": pipeline.name,
        "owner": pipeline.owner_id,
        "version": pipeline.version,
        "document": services.current_document(pipeline),
        "versions": list(pipeline.versions.values_list("number", "message")),
    }


def keys_sorted_everywhere(text: str) -> bool:
    """True if every JSON object in `text` lists its keys in sorted order."""
    ok = True

    def check(pairs):
        nonlocal ok
        keys = [k for k, _ in pairs]
        ok = ok and keys == sorted(keys)
        return dict(pairs)

    json.loads(text, object_pairs_hook=check)
    return ok


@pytest.fixture
def pipeline(alice):
    """Alice's pipeline built from the example document, at version 1."""
    return create_pipeline(alice)


# --- pipelines CRUD -----------------------------------------------------------------


def test_create_pipeline_starts_at_version_1_owned_by_the_caller(alice, alice_api):
    response = alice_api.post("/api/pipelines/", {"name": "My pipeline", "description": "Tidy data"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "My pipeline"
    assert body["description"] == "Tidy data"
    assert body["version"] == 1
    assert body["owner"] == "alice"
    assert Pipeline.objects.get(pk=body["id"]).owner == alice
    graph = alice_api.get(pipeline_url(body["id"], "graph/")).json()
    assert graph["nodes"] == [] and graph["edges"] == []


def test_create_pipeline_requires_a_name(alice_api):
    response = alice_api.post("/api/pipelines/", {"description": "no name"}, format="json")

    assert response.status_code == 400
    assert "name" in error_fields(response)
    assert Pipeline.objects.count() == 0


def test_list_shows_only_own_pipelines_and_filters_by_search(alice, bob, alice_api):
    mine = create_pipeline(alice, name="Alpha cleaning")
    other_mine = create_pipeline(alice, name="Beta synthesis")
    create_pipeline(bob, name="Alpha of bob")

    response = alice_api.get("/api/pipelines/")
    assert response.status_code == 200
    assert {p["id"] for p in response.json()["results"]} == {mine.pk, other_mine.pk}

    searched = alice_api.get("/api/pipelines/", {"search": "alpha"}).json()["results"]
    assert [p["id"] for p in searched] == [mine.pk]


def test_retrieve_pipeline(alice_api, pipeline):
    response = alice_api.get(pipeline_url(pipeline))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == pipeline.pk
    assert body["name"] == example_document()["name"]
    assert body["owner"] == "alice"
    assert body["version"] == 1
    assert [p["name"] for p in body["parameters"]] == ["input_dataset", "min_kept_share"]


def test_patch_name_is_a_new_version(alice_api, pipeline):
    response = alice_api.patch(pipeline_url(pipeline), {"name": "Renamed"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert response.json()["version"] == 2
    versions = alice_api.get(pipeline_url(pipeline, "versions/")).json()["results"]
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[0]["author"] == "alice"
    assert alice_api.get(pipeline_url(pipeline, "graph/")).json()["name"] == "Renamed"
    # The graph itself is untouched by a rename.
    graph = alice_api.get(pipeline_url(pipeline, "graph/")).json()
    assert graph["nodes"] == example_document()["nodes"]


def test_delete_pipeline(alice_api, pipeline):
    response = alice_api.delete(pipeline_url(pipeline))

    assert response.status_code == 204
    assert alice_api.get(pipeline_url(pipeline)).status_code == 404
    assert not Pipeline.objects.filter(pk=pipeline.pk).exists()
    assert not Node.objects.filter(pipeline_id=pipeline.pk).exists()


# --- graph --------------------------------------------------------------------------


def test_get_graph_returns_the_canonical_document_with_an_etag(alice_api, pipeline):
    response = alice_api.get(pipeline_url(pipeline, "graph/"))

    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    assert response.json() == example_document()


def test_get_graph_fills_defaults_and_sorts(alice, alice_api):
    sparse = {
        "name": "sparse",
        "nodes": [node("z_out", "output_dataset"), node("a_in", "input_dataset")],
        "edges": [{"source": "a_in", "target": "z_out"}],
    }
    pipeline = create_pipeline(alice, sparse)

    graph = alice_api.get(pipeline_url(pipeline, "graph/")).json()

    assert [n["key"] for n in graph["nodes"]] == ["a_in", "z_out"]
    assert graph["nodes"][0] == {
        "key": "a_in",
        "type": "input_dataset",
        "label": "",
        "config": {"dataset": "corpus"},
        "position": {"x": 0, "y": 0},
        "parent": None,
        "notes": "",
        "settings": {},
    }
    assert graph["edges"] == [edge("a_in", "z_out")]
    assert graph["description"] == "" and graph["parameters"] == []


def test_put_graph_saves_a_new_version_with_message_and_author(alice_api, pipeline):
    document = edited_example()

    response = put_graph(alice_api, pipeline, {**document, "message": "Questions first"}, HTTP_IF_MATCH='"1"')

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response.json()["document"] == document
    assert response["ETag"] == '"2"'
    graph = alice_api.get(pipeline_url(pipeline, "graph/"))
    assert graph.json() == document
    assert graph["ETag"] == '"2"'
    latest = alice_api.get(pipeline_url(pipeline, "versions/")).json()["results"][0]
    assert latest["number"] == 2
    assert latest["message"] == "Questions first"
    assert latest["author"] == "alice"


def test_put_graph_with_a_stale_if_match_is_refused(alice_api, pipeline):
    assert put_graph(alice_api, pipeline, edited_example(), HTTP_IF_MATCH='"1"').status_code == 200
    before = state_of(pipeline.pk)

    other_edit = example_document()
    find_node(other_edit, "clean")["label"] = "Someone else's edit"
    response = put_graph(alice_api, pipeline, other_edit, HTTP_IF_MATCH='"1"')

    assert response.status_code == 412
    assert response.json()["current_version"] == 2
    assert state_of(pipeline.pk) == before


def test_put_graph_with_a_malformed_if_match_is_a_400(alice_api, pipeline):
    before = state_of(pipeline.pk)

    response = put_graph(alice_api, pipeline, edited_example(), HTTP_IF_MATCH="yesterday")

    assert response.status_code == 400
    assert "If-Match" in error_fields(response)
    assert state_of(pipeline.pk) == before


def _unknown_type(doc):
    find_node(doc, "clean")["type"] = "no_such_type"
    return "clean", f"nodes[{node_index(doc, 'clean')}].type", "no_such_type"


def _bad_config(doc):
    find_node(doc, "annotate")["config"]["labels"] = []
    return "annotate", f"nodes[{node_index(doc, 'annotate')}].config.labels", ""


def _missing_required_config(doc):
    del find_node(doc, "input")["config"]["dataset"]
    return "input", f"nodes[{node_index(doc, 'input')}].config.dataset", "required"


def _unknown_config_field(doc):
    find_node(doc, "synthesize")["config"]["colour"] = "blue"
    return "synthesize", f"nodes[{node_index(doc, 'synthesize')}].config.colour", "not a known field"


def _bad_settings(doc):
    find_node(doc, "clean")["settings"] = {"retries": -1}
    return "clean", f"nodes[{node_index(doc, 'clean')}].settings.retries", ""


def _dangling_edge(doc):
    doc["edges"].append(edge("clean", "ghost"))
    return None, f"edges[{len(doc['edges']) - 1}].target", "ghost"


def _unknown_handle(doc):
    doc["edges"].append(edge("enough", "save_annotated", handle="maybe"))
    return "enough", f"edges[{len(doc['edges']) - 1}].source_handle", "maybe"


def _cycle(doc):
    doc["edges"].append(edge("annotate", "clean"))
    return None, "edges", "cycle"


def _undefined_parameter(doc):
    find_node(doc, "enough")["config"]["expression"] = "nodes.clean.output.count > params.nope"
    return "enough", f"nodes[{node_index(doc, 'enough')}].config.expression", "nope"


def _duplicate_key(doc):
    doc["nodes"].append(node("clean"))
    return "clean", "key", "duplicate"


INVALID_EDITS = [
    _unknown_type,
    _bad_config,
    _missing_required_config,
    _unknown_config_field,
    _bad_settings,
    _dangling_edge,
    _unknown_handle,
    _cycle,
    _undefined_parameter,
    _duplicate_key,
]


def _assert_names(errors: list[dict], node_key, field: str, message_part: str):
    for error in errors:
        assert set(error) == {"node", "field", "message"}
    matching = [e for e in errors if e["field"] == field]
    assert matching, f"no error for field {field!r} in {errors}"
    if node_key is not None:
        assert any(e["node"] == node_key for e in matching), errors
    assert any(message_part in e["message"] for e in matching), errors


@pytest.mark.parametrize("make_invalid", INVALID_EDITS, ids=lambda f: f.__name__.strip("_"))
def test_put_invalid_graph_is_a_400_naming_node_and_field_and_changes_nothing(alice_api, pipeline, make_invalid):
    document = edited_example()  # valid changes too: none of them may be saved
    node_key, field, message_part = make_invalid(document)
    before = state_of(pipeline.pk)

    response = put_graph(alice_api, pipeline, {**document, "message": "broken"})

    assert response.status_code == 400
    _assert_names(response.json()["errors"], node_key, field, message_part)
    assert state_of(pipeline.pk) == before
    assert alice_api.get(pipeline_url(pipeline, "graph/")).json() == example_document()


def test_cycle_error_names_a_node_of_the_cycle(alice_api, pipeline):
    document = example_document()
    document["edges"].append(edge("annotate", "clean"))

    errors = put_graph(alice_api, pipeline, document).json()["errors"]

    cycle_errors = [e for e in errors if e["field"] == "edges" and "cycle" in e["message"]]
    assert cycle_errors and cycle_errors[0]["node"] in {"clean", "enough", "annotate"}


@pytest.mark.parametrize("body", [[example_document()], "just a string", 42])
def test_put_graph_with_a_non_object_body_is_a_400(alice_api, pipeline, body):
    before = state_of(pipeline.pk)

    response = put_graph(alice_api, pipeline, body)

    assert response.status_code == 400
    assert state_of(pipeline.pk) == before


def test_put_graph_with_a_non_string_message_is_a_400(alice_api, pipeline):
    before = state_of(pipeline.pk)

    response = put_graph(alice_api, pipeline, {**edited_example(), "message": 7})

    assert response.status_code == 400
    assert "message" in error_fields(response)
    assert state_of(pipeline.pk) == before


def test_unchanged_put_does_not_create_a_version(alice_api, pipeline):
    response = put_graph(alice_api, pipeline, {**example_document(), "message": "nothing really"}, HTTP_IF_MATCH='"1"')

    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert response["ETag"] == '"1"'
    assert version_numbers(alice_api, pipeline) == [1]


def test_put_graph_removing_and_adding_nodes_and_edges(alice_api, pipeline):
    document = example_document()
    document["nodes"] = [n for n in document["nodes"] if n["key"] != "save_synthesized"]
    document["edges"] = [e for e in document["edges"] if e["target"] != "save_synthesized"]
    document["nodes"].append(node("save_all", "output_dataset", label="Save all"))
    document["edges"].append(edge("synthesize", "save_all"))

    response = put_graph(alice_api, pipeline, document)

    assert response.status_code == 200
    graph = alice_api.get(pipeline_url(pipeline, "graph/")).json()
    assert [n["key"] for n in graph["nodes"]] == [
        "annotate",
        "clean",
        "enough",
        "input",
        "save_all",
        "save_annotated",
        "synthesize",
    ]
    assert edge("synthesize", "save_all") in graph["edges"]
    assert edge("synthesize", "save_synthesized") not in graph["edges"]


def test_put_graph_with_a_loop_container_round_trips_parents(alice_api, alice):
    pipeline = create_pipeline(alice, name="loops")
    document = {
        "name": "loops",
        "nodes": [
            node("rounds", "loop"),
            node("make", "data_synthesis", parent="rounds"),
            node("pause", "wait", parent="rounds"),
            node("save", "output_dataset"),
        ],
        "edges": [edge("make", "pause"), edge("rounds", "save")],
    }

    response = put_graph(alice_api, pipeline, document)

    assert response.status_code == 200
    graph = alice_api.get(pipeline_url(pipeline, "graph/")).json()
    assert {n["key"]: n["parent"] for n in graph["nodes"]} == {
        "make": "rounds",
        "pause": "rounds",
        "rounds": None,
        "save": None,
    }


# --- validate -----------------------------------------------------------------------


def test_validate_a_bad_document(alice_api, pipeline):
    document = example_document()
    find_node(document, "clean")["type"] = "no_such_type"

    response = alice_api.post(pipeline_url(pipeline, "validate/"), document, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    _assert_names(body["errors"], "clean", f"nodes[{node_index(document, 'clean')}].type", "no_such_type")
    assert state_of(pipeline.pk)["version"] == 1  # validating never saves


def test_validate_a_good_document(alice_api, pipeline):
    response = alice_api.post(pipeline_url(pipeline, "validate/"), edited_example(), format="json")

    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": []}
    assert alice_api.get(pipeline_url(pipeline, "graph/")).json() == example_document()


def test_validate_with_an_empty_body_checks_the_saved_graph(alice_api, pipeline):
    assert alice_api.post(pipeline_url(pipeline, "validate/")).json() == {"valid": True, "errors": []}

    # The saved graph goes bad behind the API's back (e.g. a type's schema got stricter).
    Node.objects.filter(pipeline=pipeline, key="annotate").update(config={"labels": []})
    response = alice_api.post(pipeline_url(pipeline, "validate/"))

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert any(e["node"] == "annotate" and e["field"].endswith("config.labels") for e in body["errors"])


def test_validate_a_non_object_body_is_a_400(alice_api, pipeline):
    response = alice_api.post(pipeline_url(pipeline, "validate/"), [1, 2], format="json")

    assert response.status_code == 400


# --- versions -----------------------------------------------------------------------


@pytest.fixture
def two_versions(alice_api, pipeline):
    """v1 = example; v2 = labels changed, a node relabelled and moved, one output swapped for another."""
    document = edited_example()
    find_node(document, "clean")["position"] = {"x": 333, "y": 150}
    find_node(document, "clean")["settings"] = {"retries": 5}
    document["nodes"] = [n for n in document["nodes"] if n["key"] != "save_synthesized"]
    document["edges"] = [e for e in document["edges"] if e["target"] != "save_synthesized"]
    document["nodes"].append(node("save_all", "output_dataset", label="Save all"))
    document["edges"].append(edge("synthesize", "save_all"))
    response = put_graph(alice_api, pipeline, {**document, "message": "v2"})
    assert response.status_code == 200 and response.json()["version"] == 2
    return pipeline, response.json()["document"]


def test_versions_list(alice_api, two_versions):
    pipeline, _ = two_versions

    versions = alice_api.get(pipeline_url(pipeline, "versions/")).json()["results"]

    assert [(v["number"], v["message"], v["author"]) for v in versions] == [
        (2, "v2", "alice"),
        (1, "Imported", "alice"),
    ]
    assert all(v["created_at"] for v in versions)


def test_version_detail_returns_the_rebuilt_document(alice_api, two_versions):
    pipeline, v2_document = two_versions

    v1 = alice_api.get(pipeline_url(pipeline, "versions/1/"))
    v2 = alice_api.get(pipeline_url(pipeline, "versions/2/"))

    assert v1.status_code == 200 and v2.status_code == 200
    assert v1.json()["number"] == 1
    assert v1.json()["document"] == example_document()
    assert v2.json()["document"] == v2_document
    assert v2.json()["message"] == "v2"


def test_version_detail_of_an_old_name(alice_api, pipeline):
    alice_api.patch(pipeline_url(pipeline), {"name": "New name"}, format="json")

    assert alice_api.get(pipeline_url(pipeline, "versions/1/")).json()["document"]["name"] == example_document()["name"]
    assert alice_api.get(pipeline_url(pipeline, "versions/2/")).json()["document"]["name"] == "New name"


def test_diff_lists_added_removed_and_changed_nodes_and_edges(alice_api, two_versions):
    pipeline, _ = two_versions

    response = alice_api.get(pipeline_url(pipeline, "versions/2/diff/"), {"against": 1})

    assert response.status_code == 200
    diff = response.json()
    assert diff["from_version"] == 1 and diff["to_version"] == 2
    assert [n["key"] for n in diff["nodes"]["added"]] == ["save_all"]
    assert diff["nodes"]["added"][0]["label"] == "Save all"
    assert [n["key"] for n in diff["nodes"]["removed"]] == ["save_synthesized"]
    changed = {c["key"]: {f["field"]: f for f in c["changes"]} for c in diff["nodes"]["changed"]}
    assert set(changed) == {"annotate", "clean", "enough"}
    assert changed["annotate"]["config.labels"] == {
        "field": "config.labels",
        "old": ["dialogue", "question", "instruction", "other"],
        "new": ["question", "dialogue", "instruction", "other"],
        "change": "changed",
    }
    assert set(changed["annotate"]) == {"config.labels"}
    assert changed["enough"]["label"]["new"] == "At least min_records?"
    assert changed["clean"]["position_x"]["old"] == 300 and changed["clean"]["position_x"]["new"] == 333
    assert changed["clean"]["settings.retries"]["old"] == 2 and changed["clean"]["settings.retries"]["new"] == 5
    assert diff["edges"]["added"] == [edge("synthesize", "save_all")]
    assert diff["edges"]["removed"] == [edge("synthesize", "save_synthesized")]


def test_diff_reports_pipeline_level_changes(alice_api, pipeline):
    alice_api.patch(pipeline_url(pipeline), {"name": "Renamed"}, format="json")

    diff = alice_api.get(pipeline_url(pipeline, "versions/2/diff/"), {"against": 1}).json()

    renamed = {"field": "name", "old": example_document()["name"], "new": "Renamed", "change": "changed"}
    assert renamed in diff["pipeline"]
    assert diff["nodes"] == {"added": [], "removed": [], "changed": []}
    assert diff["edges"] == {"added": [], "removed": []}


def test_diff_of_a_config_key_added_and_removed(alice_api, pipeline):
    document = example_document()
    find_node(document, "annotate")["config"]["instruction"] = "Classify the task."
    del find_node(document, "synthesize")["config"]["count"]
    put_graph(alice_api, pipeline, document)

    diff = alice_api.get(pipeline_url(pipeline, "versions/2/diff/"), {"against": 1}).json()

    changes = {(c["key"], f["field"]): f for c in diff["nodes"]["changed"] for f in c["changes"]}
    assert changes[("annotate", "config.instruction")]["change"] == "added"
    assert changes[("annotate", "config.instruction")]["new"] == "Classify the task."
    assert changes[("synthesize", "config.count")]["change"] == "removed"
    assert changes[("synthesize", "config.count")]["old"] == 100


def test_diff_names_a_node_moved_out_of_a_loop_by_parent_key(alice, alice_api):
    loop_doc = {
        "name": "loops",
        "nodes": [
            node("rounds", "loop"),
            node("make", "data_synthesis", parent="rounds"),
            node("save", "output_dataset"),
        ],
        "edges": [edge("rounds", "save")],
    }
    pipeline = create_pipeline(alice, loop_doc)
    moved = copy.deepcopy(loop_doc)
    find_node(moved, "make")["parent"] = None
    moved["edges"].append(edge("make", "save"))
    assert put_graph(alice_api, pipeline, moved).status_code == 200

    forward = alice_api.get(pipeline_url(pipeline, "versions/2/diff/"), {"against": 1}).json()
    backward = alice_api.get(pipeline_url(pipeline, "versions/1/diff/"), {"against": 2}).json()

    assert forward["nodes"]["changed"] == [
        {"key": "make", "changes": [{"field": "parent", "old": "rounds", "new": None, "change": "changed"}]}
    ]
    assert forward["edges"] == {"added": [edge("make", "save")], "removed": []}
    assert backward["nodes"]["changed"][0]["changes"][0] == {
        "field": "parent",
        "old": None,
        "new": "rounds",
        "change": "changed",
    }
    assert backward["edges"] == {"added": [], "removed": [edge("make", "save")]}


@pytest.mark.parametrize("query", [{}, {"against": "abc"}, {"against": "0"}, {"against": ""}])
def test_diff_needs_a_numeric_against(alice_api, two_versions, query):
    pipeline, _ = two_versions

    response = alice_api.get(pipeline_url(pipeline, "versions/2/diff/"), query)

    assert response.status_code == 400
    assert "against" in error_fields(response)


@pytest.mark.parametrize(
    "method, suffix, query",
    [
        ("get", "versions/99/", {}),
        ("get", "versions/99/diff/", {"against": 1}),
        ("get", "versions/2/diff/", {"against": 99}),
        ("post", "versions/99/restore/", {}),
        ("get", "export/", {"version": 99}),
    ],
)
def test_unknown_version_is_a_404(alice_api, two_versions, method, suffix, query):
    pipeline, _ = two_versions
    before = state_of(pipeline.pk)

    url = pipeline_url(pipeline, suffix)
    response = alice_api.get(url, query) if method == "get" else alice_api.post(url)

    assert response.status_code == 404
    assert state_of(pipeline.pk) == before


def test_restore_writes_a_new_version_equal_to_the_old_one(alice_api, two_versions):
    pipeline, v2_document = two_versions

    response = alice_api.post(pipeline_url(pipeline, "versions/1/restore/"))

    assert response.status_code == 201
    assert response.json()["version"] == 3
    assert response.json()["document"] == example_document()
    graph = alice_api.get(pipeline_url(pipeline, "graph/"))
    assert graph.json() == example_document()
    assert graph["ETag"] == '"3"'
    latest = alice_api.get(pipeline_url(pipeline, "versions/")).json()["results"][0]
    assert latest["number"] == 3 and latest["author"] == "alice" and "1" in latest["message"]
    # The history stays intact: version 2 is still there as it was.
    v2 = alice_api.get(pipeline_url(pipeline, "versions/2/")).json()["document"]
    assert v2 == v2_document


def test_restore_then_diff_against_the_restored_version_is_empty(alice_api, two_versions):
    pipeline, _ = two_versions
    alice_api.post(pipeline_url(pipeline, "versions/1/restore/"))

    diff = alice_api.get(pipeline_url(pipeline, "versions/3/diff/"), {"against": 1}).json()

    assert diff["nodes"] == {"added": [], "removed": [], "changed": []}
    assert diff["edges"] == {"added": [], "removed": []}
    assert diff["pipeline"] == []


# --- export / import ----------------------------------------------------------------


def test_export_is_an_attachment_with_sorted_keys(alice_api, pipeline):
    response = alice_api.get(pipeline_url(pipeline, "export/"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert 'filename="curate-then-annotate-or-synthesize.json"' in disposition
    text = response.content.decode()
    assert json.loads(text) == example_document()
    assert keys_sorted_everywhere(text)


def test_export_a_given_version(alice_api, two_versions):
    pipeline, v2_document = two_versions

    latest = alice_api.get(pipeline_url(pipeline, "export/"))
    first = alice_api.get(pipeline_url(pipeline, "export/"), {"version": 1})

    assert json.loads(latest.content) == v2_document
    assert first.status_code == 200
    assert json.loads(first.content) == example_document()


def test_export_with_a_bad_version_is_a_400(alice_api, pipeline):
    response = alice_api.get(pipeline_url(pipeline, "export/"), {"version": "latest"})

    assert response.status_code == 400
    assert "version" in error_fields(response)


def test_export_then_import_round_trips(alice_api, two_versions):
    pipeline, v2_document = two_versions
    exported = json.loads(alice_api.get(pipeline_url(pipeline, "export/")).content)

    response = alice_api.post("/api/pipelines/import/", exported, format="json")

    assert response.status_code == 201
    assert alice_api.get(pipeline_url(response.json()["id"], "graph/")).json() == v2_document


def test_import_the_example_document(alice, alice_api):
    response = alice_api.post("/api/pipelines/import/", example_document(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    assert body["owner"] == "alice"
    assert body["name"] == example_document()["name"]
    assert Pipeline.objects.get(pk=body["id"]).owner == alice
    assert alice_api.get(pipeline_url(body["id"], "graph/")).json() == example_document()
    versions = alice_api.get(pipeline_url(body["id"], "versions/")).json()["results"]
    assert [(v["number"], v["author"]) for v in versions] == [(1, "alice")]


def test_import_an_invalid_document_creates_nothing(alice_api):
    document = example_document()
    find_node(document, "clean")["type"] = "no_such_type"
    count = Pipeline.objects.count()

    response = alice_api.post("/api/pipelines/import/", document, format="json")

    assert response.status_code == 400
    _assert_names(response.json()["errors"], "clean", f"nodes[{node_index(document, 'clean')}].type", "no_such_type")
    assert Pipeline.objects.count() == count
    assert Node.objects.count() == 0
    assert PipelineVersion.objects.count() == 0


@pytest.mark.parametrize("body", [[example_document()], {"nodes": []}, {"name": ""}])
def test_import_a_non_document_is_a_400(alice_api, body):
    response = alice_api.post("/api/pipelines/import/", body, format="json")

    assert response.status_code == 400
    assert Pipeline.objects.count() == 0


def test_import_of_a_huge_document_is_refused_naming_nodes(alice_api):
    document = linear_document(10_000, name="huge")

    response = alice_api.post("/api/pipelines/import/", document, format="json")

    assert response.status_code == 400
    assert "nodes" in {e["field"] for e in response.json()["errors"]}
    assert Pipeline.objects.count() == 0


def test_import_of_a_deeply_nested_body_is_a_400_not_a_500(alice_api):
    depth = 100_000
    body = b"[" * depth + b"]" * depth

    response = alice_api.generic("POST", "/api/pipelines/import/", body, content_type="application/json")

    assert response.status_code == 400
    assert Pipeline.objects.count() == 0


def test_deeply_nested_body_on_graph_put_is_a_400(alice_api, pipeline):
    depth = 100_000
    body = b'{"name": "x", "description": ' + b"[" * depth + b"]" * depth + b"}"
    before = state_of(pipeline.pk)

    response = alice_api.generic("PUT", pipeline_url(pipeline, "graph/"), body, content_type="application/json")

    assert response.status_code == 400
    assert state_of(pipeline.pk) == before


def test_malformed_json_is_a_400(alice_api):
    response = alice_api.generic("POST", "/api/pipelines/import/", b'{"name": ', content_type="application/json")

    assert response.status_code == 400
    assert Pipeline.objects.count() == 0


@pytest.mark.parametrize("literal", ['"x": 900', '"min_length": 50'], ids=["position", "config"])
def test_an_out_of_range_number_is_refused_not_saved(alice, pipeline, literal):
    client = api_for(alice)
    client.raise_request_exception = False  # see what a real client would get
    before = state_of(pipeline.pk)
    body = json.dumps(example_document())
    assert literal in body
    body = body.replace(literal, literal.split(":")[0] + ": 1e400", 1)

    response = client.generic("PUT", pipeline_url(pipeline, "graph/"), body, content_type="application/json")

    assert response.status_code == 400
    assert state_of(pipeline.pk) == before
    assert client.get(pipeline_url(pipeline, "graph/")).status_code == 200


# --- templates ----------------------------------------------------------------------


def _templates(client) -> list[dict]:
    response = client.get("/api/templates/")
    assert response.status_code == 200
    return response.json()["results"]


@pytest.mark.parametrize("username", ["alice", "bob"])
def test_every_user_sees_the_builtin_templates(db, username):
    client = api_for(create_user(username))

    builtins = [t for t in _templates(client) if t["built_in"]]

    assert {t["slug"] for t in builtins} == BUILTIN_SLUGS
    assert all(t["owner"] is None for t in builtins)
    example = next(t for t in builtins if t["slug"] == "curate_annotate_or_synthesize")
    assert example["document"] == example_document()


def test_create_template_from_a_pipeline(alice_api, two_versions):
    pipeline, v2_document = two_versions

    response = alice_api.post(
        "/api/templates/", {"pipeline": pipeline.pk, "name": "Mine", "description": "reuse me"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Mine" and body["description"] == "reuse me"
    assert body["owner"] == "alice" and body["built_in"] is False
    assert body["document"] == v2_document
    assert body["id"] in {t["id"] for t in _templates(alice_api)}


def test_create_template_from_a_specific_version(alice_api, two_versions):
    pipeline, _ = two_versions

    response = alice_api.post("/api/templates/", {"pipeline": pipeline.pk, "version": 1, "name": "Old"}, format="json")

    assert response.status_code == 201
    assert response.json()["document"] == example_document()


def test_create_template_needs_a_name(alice_api, pipeline):
    response = alice_api.post("/api/templates/", {"pipeline": pipeline.pk}, format="json")

    assert response.status_code == 400
    assert "name" in error_fields(response)
    assert not Template.objects.filter(owner__isnull=False).exists()


@pytest.mark.parametrize("with_name", [False, True])
def test_instantiate_a_template(alice, alice_api, pipeline, with_name):
    template = alice_api.post("/api/templates/", {"pipeline": pipeline.pk, "name": "Mine"}, format="json").json()

    body = {"name": "From template"} if with_name else {}
    response = alice_api.post(f"/api/templates/{template['id']}/instantiate/", body, format="json")

    assert response.status_code == 201
    created = response.json()
    assert created["id"] != pipeline.pk
    assert created["owner"] == "alice" and created["version"] == 1
    expected = {**template["document"], "name": "From template"} if with_name else template["document"]
    assert created["name"] == expected["name"]
    assert alice_api.get(pipeline_url(created["id"], "graph/")).json() == expected


def test_instantiate_a_builtin_template(bob):
    client = api_for(bob)
    template = next(t for t in _templates(client) if t["slug"] == "synthesize_in_rounds")

    response = client.post(f"/api/templates/{template['id']}/instantiate/", {}, format="json")

    assert response.status_code == 201
    assert response.json()["owner"] == "bob"
    assert client.get(pipeline_url(response.json()["id"], "graph/")).json() == template["document"]


def test_another_user_cannot_see_use_or_delete_alices_template(alice_api, bob, pipeline):
    template = alice_api.post("/api/templates/", {"pipeline": pipeline.pk, "name": "Mine"}, format="json").json()
    bob_api = api_for(bob)
    pipelines_before = Pipeline.objects.count()

    assert template["id"] not in {t["id"] for t in _templates(bob_api)}
    assert bob_api.get(f"/api/templates/{template['id']}/").status_code == 404
    assert bob_api.post(f"/api/templates/{template['id']}/instantiate/", {}, format="json").status_code == 404
    assert bob_api.delete(f"/api/templates/{template['id']}/").status_code == 404

    assert Template.objects.filter(pk=template["id"]).exists()
    assert Pipeline.objects.count() == pipelines_before


def test_owner_can_delete_own_template(alice_api, pipeline):
    template = alice_api.post("/api/templates/", {"pipeline": pipeline.pk, "name": "Mine"}, format="json").json()

    assert alice_api.delete(f"/api/templates/{template['id']}/").status_code == 204
    assert alice_api.get(f"/api/templates/{template['id']}/").status_code == 404


@pytest.mark.parametrize("as_staff", [False, True])
def test_builtin_template_cannot_be_deleted(alice, staff, as_staff):
    client = api_for(staff if as_staff else alice)
    template = Template.objects.get(owner__isnull=True, slug="clean_and_deduplicate")

    response = client.delete(f"/api/templates/{template.pk}/")

    assert response.status_code == 403
    assert Template.objects.filter(pk=template.pk).exists()


def test_template_from_a_pipeline_you_cannot_see_is_a_400_naming_pipeline(alice, bob, pipeline):
    client = api_for(bob)

    hidden = client.post("/api/templates/", {"pipeline": pipeline.pk, "name": "Stolen"}, format="json")
    missing = client.post("/api/templates/", {"pipeline": 999_999, "name": "Nothing"}, format="json")

    assert hidden.status_code == 400
    assert "pipeline" in error_fields(hidden)
    # The answer does not reveal that alice's pipeline exists.
    assert hidden.json() == missing.json()
    assert not Template.objects.filter(owner=bob).exists()


# --- node types ---------------------------------------------------------------------


def test_node_type_catalogue(alice_api):
    response = alice_api.get("/api/node-types/")

    assert response.status_code == 200
    types = {t["key"]: t for t in response.json()}
    # The suite also registers its engine test type through DATAMATE_NODE_TYPE_MODULES.
    assert set(types) == BUILTIN_NODE_TYPES | {"test_step", "test_sharded_copy"}
    for node_type in types.values():
        assert node_type["config_schema"]["type"] == "object"
        assert isinstance(node_type["handles"], list) and "error" in node_type["handles"]
    assert {"true", "false", "error"} <= set(types["condition"]["handles"])
    assert "out" not in types["condition"]["handles"]
    assert types["loop"]["is_container"] is True
    assert types["output_dataset"]["needs_input"] is True
    assert types["input_dataset"]["needs_input"] is False
    # Every type takes incoming edges: one that needs no input then runs after its source.
    assert all(t["accepts_input"] is True for t in types.values())
    assert types["parallel"]["handles"] == ["branch-1", "branch-2", "error"]
    # Catalogue hints the designer turns into pickers: operators and datasets by name.
    step = types["data_cleaning"]["config_schema"]["properties"]["operators"]["items"]
    assert step["properties"]["name"]["x-catalogue"] == "operators"
    for key in ("input_dataset", "output_dataset"):
        assert types[key]["config_schema"]["properties"]["dataset"]["x-catalogue"] == "datasets"


def test_node_handles_follow_the_config(alice_api):
    response = alice_api.post(
        "/api/node-types/handles/",
        {
            "nodes": [
                {"type": "parallel", "config": {"branches": 3}},
                {"type": "parallel"},
                {"type": "condition", "config": {"expression": "true"}},
            ]
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {
        "handles": [
            ["branch-1", "branch-2", "branch-3", "error"],
            ["branch-1", "branch-2", "error"],
            ["true", "false", "error"],
        ]
    }


def test_node_handles_of_an_unknown_type_name_the_field(alice_api):
    response = alice_api.post(
        "/api/node-types/handles/", {"nodes": [{"type": "loop"}, {"type": "nope"}]}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"errors": [{"field": "nodes[1].type", "message": "unknown node type 'nope'"}]}


def test_node_type_detail(alice_api):
    response = alice_api.get("/api/node-types/condition/")

    assert response.status_code == 200
    body = response.json()
    assert body["key"] == "condition"
    assert body["expression_fields"] == ["expression"]
    assert "expression" in body["config_schema"]["required"]
    assert {"true", "false", "error"} <= set(body["handles"])


def test_unknown_node_type_is_a_404(alice_api):
    assert alice_api.get("/api/node-types/no_such_type/").status_code == 404


# --- permissions --------------------------------------------------------------------

PIPELINE_ENDPOINTS = [
    ("get", "", None),
    ("patch", "", {"name": "hijacked"}),
    ("put", "", {"name": "hijacked", "description": "mine now"}),
    ("delete", "", None),
    ("get", "graph/", None),
    ("put", "graph/", "DOCUMENT"),
    ("post", "validate/", "DOCUMENT"),
    ("get", "export/", None),
    ("get", "versions/", None),
    ("get", "versions/1/", None),
    ("get", "versions/1/diff/?against=1", None),
    ("post", "versions/1/restore/", None),
]


def _call(client, method: str, url: str, body):
    if body == "DOCUMENT":
        body = {**edited_example(), "name": "hijacked"}
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.parametrize("method, suffix, body", PIPELINE_ENDPOINTS, ids=lambda v: v if isinstance(v, str) else "")
def test_another_user_gets_404_on_every_pipeline_endpoint(bob, pipeline, method, suffix, body):
    # A second version so restore/diff have something to act on.
    put_graph(api_for(pipeline.owner), pipeline, edited_example())
    before = state_of(pipeline.pk)

    response = _call(api_for(bob), method, pipeline_url(pipeline, suffix), body)

    assert response.status_code == 404
    assert state_of(pipeline.pk) == before


def test_another_user_cannot_template_alices_pipeline(bob, pipeline):
    before = state_of(pipeline.pk)

    response = api_for(bob).post("/api/templates/", {"pipeline": pipeline.pk, "name": "x"}, format="json")

    assert response.status_code == 400  # "no such pipeline", the same answer as for an id that does not exist
    assert "pipeline" in error_fields(response)
    assert not Template.objects.filter(owner__isnull=False).exists()
    assert state_of(pipeline.pk) == before


def test_staff_sees_other_users_pipelines(staff, pipeline):
    client = api_for(staff)

    assert pipeline.pk in {p["id"] for p in client.get("/api/pipelines/").json()["results"]}
    assert client.get(pipeline_url(pipeline)).status_code == 200
    graph = client.get(pipeline_url(pipeline, "graph/"))
    assert graph.status_code == 200 and graph.json() == example_document()


ANONYMOUS_ENDPOINTS = [
    *PIPELINE_ENDPOINTS,
    ("get", "LIST", None),
    ("post", "LIST", {"name": "anon"}),
    ("post", "IMPORT", "DOCUMENT"),
    ("get", "/api/templates/", None),
    ("post", "/api/templates/", {"pipeline": 1, "name": "anon"}),
    ("get", "/api/node-types/", None),
    ("get", "/api/node-types/condition/", None),
]


@pytest.mark.parametrize("method, suffix, body", ANONYMOUS_ENDPOINTS, ids=lambda v: v if isinstance(v, str) else "")
def test_anonymous_is_refused_everywhere(api_client, pipeline, method, suffix, body):
    before = state_of(pipeline.pk)
    if suffix == "LIST":
        url = "/api/pipelines/"
    elif suffix == "IMPORT":
        url = "/api/pipelines/import/"
    elif suffix.startswith("/"):
        url = suffix
    else:
        url = pipeline_url(pipeline, suffix)

    response = _call(api_client, method, url, body)

    assert response.status_code in (401, 403)
    assert state_of(pipeline.pk) == before
    assert Pipeline.objects.count() == 1


def test_anonymous_template_instantiate_is_refused(api_client, db):
    template = Template.objects.get(owner__isnull=True, slug="clean_and_deduplicate")

    response = api_client.post(f"/api/templates/{template.pk}/instantiate/", {}, format="json")

    assert response.status_code in (401, 403)
    assert Pipeline.objects.count() == 0


# --- authentication -----------------------------------------------------------------


def _token(client, username="alice", password=PASSWORD):
    return client.post("/api/auth/token/", {"username": username, "password": password}, format="json")


def test_token_auth(alice):
    client = APIClient()
    response = _token(client)
    assert response.status_code == 200
    token = response.json()["token"]

    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    created = client.post("/api/pipelines/", {"name": "via token"}, format="json")

    assert created.status_code == 201
    assert created.json()["owner"] == "alice"
    assert [p["name"] for p in client.get("/api/pipelines/").json()["results"]] == ["via token"]


def test_token_with_a_wrong_password_is_refused(alice):
    response = _token(APIClient(), password="wrong")

    assert response.status_code == 400
    assert "token" not in response.json()


def test_a_bad_token_is_a_401(alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/pipelines/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_a_bad_token_is_refused(alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/pipelines/")
    created = client.post("/api/pipelines/", {"name": "nope"}, format="json")

    assert response.status_code in (401, 403)
    assert created.status_code in (401, 403)
    assert Pipeline.objects.count() == 0


def test_session_auth_enforces_csrf(alice):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)

    assert client.get("/api/pipelines/").status_code == 200
    refused = client.post("/api/pipelines/", {"name": "no csrf"}, format="json")

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert Pipeline.objects.count() == 0

    # With the token from the cookie, the same request goes through.
    client.get("/api-auth/login/")
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/pipelines/", {"name": "with csrf"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


# --- schema -------------------------------------------------------------------------


def test_openapi_schema(alice_api):
    response = alice_api.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.1")
    paths = set(schema["paths"])
    for expected in [
        "/api/pipelines/",
        "/api/pipelines/{id}/",
        "/api/pipelines/{id}/graph/",
        "/api/pipelines/{id}/validate/",
        "/api/pipelines/{id}/export/",
        "/api/pipelines/import/",
        "/api/pipelines/{id}/versions/",
        "/api/pipelines/{id}/versions/{number}/",
        "/api/pipelines/{id}/versions/{number}/diff/",
        "/api/pipelines/{id}/versions/{number}/restore/",
        "/api/templates/",
        "/api/templates/{id}/",
        "/api/templates/{id}/instantiate/",
        "/api/node-types/",
        "/api/node-types/{id}/",
    ]:
        assert expected in paths, expected
    assert "put" in schema["paths"]["/api/pipelines/{id}/graph/"]


def test_api_docs_page(alice_api):
    response = alice_api.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()
