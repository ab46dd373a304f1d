"""Versions: every save is a version that can be rebuilt, diffed and restored exactly."""

import copy

import pytest

from pipelines import documents, services
from pipelines.graph_validation import GraphInvalid
from pipelines.models import Edge, Node, Pipeline, PipelineVersion
from tests.factories import create_pipeline, edge, example_document, linear_document, node

pytestmark = pytest.mark.django_db


def test_example_round_trip_import_edit_diff_restore_export(alice, alice_api):
    """The issue's example: import, two edits, diff v1/v3, restore v1, export = the original."""
    original = example_document()
    response = alice_api.post("/api/pipelines/import/", original, format="json")
    assert response.status_code == 201, response.content
    pipeline_id = response.json()["id"]
    assert response.json()["version"] == 1

    # Edit 1: relabel annotation and change a config value deep inside the cleaning chain.
    doc = alice_api.get(f"/api/pipelines/{pipeline_id}/graph/").json()
    assert doc == original
    annotate = next(n for n in doc["nodes"] if n["key"] == "annotate")
    annotate["config"]["labels"].append("code")
    clean = next(n for n in doc["nodes"] if n["key"] == "clean")
    clean["config"]["operators"][2]["config"]["min_length"] = 80
    response = alice_api.put(f"/api/pipelines/{pipeline_id}/graph/", {**doc, "message": "more labels"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2

    # Edit 2: add a node with an edge, drop the synthesis branch's output, rename a parameter default.
    doc["nodes"] = [n for n in doc["nodes"] if n["key"] != "save_synthesized"]
    doc["edges"] = [e for e in doc["edges"] if e["target"] != "save_synthesized"]
    doc["nodes"].append(node("dedup_again", position={"x": 1000, "y": 300}))
    doc["edges"].append(edge("synthesize", "dedup_again"))
    doc["parameters"][1]["default"] = 0.8
    response = alice_api.put(f"/api/pipelines/{pipeline_id}/graph/", {**doc, "message": "reshape"}, format="json")
    assert response.json()["version"] == 3

    diff = alice_api.get(f"/api/pipelines/{pipeline_id}/versions/3/diff/?against=1").json()
    assert [n["key"] for n in diff["nodes"]["added"]] == ["dedup_again"]
    assert [n["key"] for n in diff["nodes"]["removed"]] == ["save_synthesized"]
    changed = {n["key"]: n["changes"] for n in diff["nodes"]["changed"]}
    assert set(changed) == {"annotate", "clean"}
    assert changed["annotate"] == [
        {
            "field": "config.labels",
            "old": ["dialogue", "question", "instruction", "other"],
            "new": ["dialogue", "question", "instruction", "other", "code"],
            "change": "changed",
        }
    ]
    assert changed["clean"] == [
        {
            "field": "config.operators",
            "old": original_operators(),
            "new": clean["config"]["operators"],
            "change": "changed",
        }
    ]
    assert diff["edges"]["added"] == [edge("synthesize", "dedup_again")]
    assert diff["edges"]["removed"] == [edge("synthesize", "save_synthesized")]
    assert diff["pipeline"] == [
        {"field": "parameters", "old": original["parameters"], "new": doc["parameters"], "change": "changed"}
    ]

    response = alice_api.post(f"/api/pipelines/{pipeline_id}/versions/1/restore/")
    assert response.status_code == 201
    assert response.json()["version"] == 4

    exported = alice_api.get(f"/api/pipelines/{pipeline_id}/export/")
    assert exported.status_code == 200
    assert exported.json() == original
    # The exported text is stable: sorted keys, fixed indent.
    assert exported.content.decode() == documents.dumps(original)

    versions = alice_api.get(f"/api/pipelines/{pipeline_id}/versions/").json()["results"]
    assert [(v["number"], v["message"], v["author"]) for v in versions] == [
        (4, "Restored version 1", "alice"),
        (3, "reshape", "alice"),
        (2, "more labels", "alice"),
        (1, "Imported", "alice"),
    ]


def original_operators():
    clean = next(n for n in example_document()["nodes"] if n["key"] == "clean")
    return clean["config"]["operators"]


def test_every_version_rebuilds_exactly(alice):
    """Rebuild each of many versions from history and compare with what was saved."""
    pipeline = create_pipeline(alice, linear_document(4))
    saved = {1: services.current_document(pipeline)}
    doc = copy.deepcopy(saved[1])
    for number in range(2, 9):
        if number % 3 == 0:  # remove the step just before the output
            last = next(e["source"] for e in doc["edges"] if e["target"] == "output")
            before = next(e["source"] for e in doc["edges"] if e["target"] == last)
            doc["nodes"] = [n for n in doc["nodes"] if n["key"] != last]
            doc["edges"] = [e for e in doc["edges"] if last not in (e["source"], e["target"])]
            doc["edges"].append(edge(before, "output"))
        else:  # insert a step before the output, move a node, edit a config value
            new_key = f"step_{number}"
            into_output = next(e for e in doc["edges"] if e["target"] == "output")
            doc["nodes"].append(node(new_key))
            doc["edges"].remove(into_output)
            doc["edges"] += [edge(into_output["source"], new_key), edge(new_key, "output")]
            doc["nodes"][0]["position"] = {"x": number * 10.0, "y": 5.5}
        doc["description"] = f"revision {number}"
        services.save_graph(pipeline, doc, author=alice, message=f"v{number}")
        saved[number] = documents.canonical(doc)
    for number, expected in saved.items():
        assert services.version_document(pipeline, number) == expected, f"version {number}"


def test_history_rows_carry_version_number_author_and_message(alice):
    pipeline = create_pipeline(alice)
    doc = services.current_document(pipeline)
    doc["nodes"][0]["label"] = "renamed"
    services.save_graph(pipeline, doc, author=alice, message="relabel")
    record = Node.history.filter(key=doc["nodes"][0]["key"]).latest("history_date")
    assert (record.pipeline_version, record.history_user, record.history_change_reason) == (2, alice, "relabel")
    # Version 2 touched one node only: unchanged rows are not rewritten.
    assert Node.history.filter(pipeline_version=2).count() == 1
    assert Edge.history.filter(pipeline_version=2).count() == 0


def test_unchanged_save_writes_no_version(alice):
    pipeline = create_pipeline(alice)
    version = services.save_graph(pipeline, services.current_document(pipeline), author=alice)
    assert version.number == 1
    assert PipelineVersion.objects.filter(pipeline=pipeline).count() == 1


def test_invalid_save_leaves_everything_as_it_was(alice):
    pipeline = create_pipeline(alice)
    before = services.current_document(pipeline)
    history_rows = Node.history.count()
    bad = copy.deepcopy(before)
    bad["nodes"].append(node("orphan", "condition", config={"expression": "params.nope"}))
    with pytest.raises(GraphInvalid):
        services.save_graph(pipeline, bad, author=alice)
    pipeline.refresh_from_db()
    assert pipeline.version == 1
    assert services.current_document(pipeline) == before
    assert Node.history.count() == history_rows


def test_stale_base_version_is_refused(alice):
    pipeline = create_pipeline(alice)
    doc = services.current_document(pipeline)
    doc["description"] = "first writer"
    services.save_graph(pipeline, doc, author=alice, base_version=1)
    doc["description"] = "second writer, based on v1"
    with pytest.raises(services.VersionConflict):
        services.save_graph(pipeline, doc, author=alice, base_version=1)
    assert services.current_document(pipeline)["description"] == "first writer"


def test_loop_children_survive_reparenting_and_container_removal(alice):
    """Nodes inside Loop containers: moving between loops and deleting a loop with its body."""
    doc = {
        "name": "loops",
        "nodes": [
            node("outer", "loop"),
            node("inner", "loop", parent="outer"),
            node("gen", "data_synthesis", parent="inner"),
            node("other", "loop"),
        ],
        "edges": [],
    }
    pipeline = create_pipeline(alice, doc)
    doc = services.current_document(pipeline)
    gen_in_v1 = copy.deepcopy(next(n for n in doc["nodes"] if n["key"] == "gen"))
    assert gen_in_v1["parent"] == "inner"
    by_key = {n["key"]: n for n in doc["nodes"]}
    by_key["gen"]["parent"] = "other"  # move out of the loop that is about to go
    doc["nodes"] = [n for n in doc["nodes"] if n["key"] not in ("outer", "inner")]
    services.save_graph(pipeline, doc, author=alice)
    assert Node.objects.get(pipeline=pipeline, key="gen").parent.key == "other"
    assert next(n for n in services.version_document(pipeline, 1)["nodes"] if n["key"] == "gen") == gen_in_v1
    assert sorted(n["key"] for n in services.version_document(pipeline, 2)["nodes"]) == ["gen", "other"]


def test_deleting_pipeline_keeps_no_live_rows(alice):
    pipeline = create_pipeline(alice)
    pipeline.delete()
    assert not Node.objects.exists() and not Edge.objects.exists()
    assert not Pipeline.objects.exists()
