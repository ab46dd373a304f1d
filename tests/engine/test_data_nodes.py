"""The data nodes doing real work on a real worker: datasets in, operators, datasets out.

The worker process shares the suite's var dir, so it reads and writes the same storage
(MEDIA_ROOT) and import root (DATAMATE_IMPORT_ROOTS) as this process."""

from pathlib import Path

from django.conf import settings
import pytest

from datasets import records, services
from datasets.models import Dataset, DatasetVersion
from pipelines.engine.runs import start_run
from pipelines.models import NodeRun
from tests.engine.conftest import all_records, make_dataset, node, node_states, outputs, wait_for_run
from tests.factories import create_pipeline, edge

pytestmark = pytest.mark.slow

CORPUS = [
    {"id": 1, "text": "<p>Adding  fractions:   1/2 + 1/4 = 3/4, as every pupil learns.</p>"},
    {"id": 2, "text": "short"},
    {"id": 3, "text": "<p>Adding  fractions:   1/2 + 1/4 = 3/4, as every pupil learns.</p>"},
    {"id": 4, "text": "The weather in the mountains changes quickly in the afternoon."},
]


@pytest.fixture
def corpus(alice):
    return make_dataset(alice, "raw", CORPUS)


def curate_document(mode="overwrite"):
    return {
        "name": "curate",
        "parameters": [{"name": "source", "type": "dataset", "required": True}],
        "nodes": [
            node("read", "input_dataset", dataset="{{ params.source }}"),
            node(
                "clean",
                "data_cleaning",
                operators=[
                    {"name": "html_to_text"},
                    {"name": "normalize_whitespace"},
                    {"name": "text_length", "config": {"min_length": 20}},
                    {"name": "exact_dedup"},
                ],
            ),
            node(
                "label",
                "data_annotation",
                labels=["math", "other"],
                rules={"math": ["fraction", "/\\d+/\\d+/"]},
                default_label="other",
            ),
            node("publish", "output_dataset", dataset="curated", mode=mode),
        ],
        "edges": [edge("read", "clean"), edge("clean", "label"), edge("label", "publish")],
    }


def test_a_curation_pipeline_cleans_labels_and_publishes_a_dataset(engine, alice, corpus):
    run = wait_for_run(start_run(create_pipeline(alice, curate_document()), {"source": "raw"}, user=alice))
    assert run.state == "succeeded", run.error
    out = outputs(run)
    assert out["read"]["count"] == 4 and out["read"]["version"] == 1

    clean = NodeRun.objects.get(run=run, node_key="clean")
    assert (clean.records_in, clean.records_out) == (4, 2)
    steps = {step["name"]: step for step in out["clean"]["operators"]["steps"]}
    assert steps["text_length"]["dropped"] == {"too_short": 1}
    assert steps["text_length"]["samples"]["too_short"][0]["text"] == "short"
    assert sum(steps["exact_dedup"]["dropped"].values()) == 1

    assert out["label"]["label_counts"] == {"math": 1, "other": 1}
    version = DatasetVersion.objects.get(dataset__owner=alice, dataset__name="curated")
    assert version.produced_by_run_id == run.pk
    assert all_records(version.manifest) == [
        {"id": 1, "text": "Adding fractions: 1/2 + 1/4 = 3/4, as every pupil learns.", "label": "math"},
        {"id": 4, "text": "The weather in the mountains changes quickly in the afternoon.", "label": "other"},
    ]
    assert out["publish"]["version"] == 1 and out["publish"]["count"] == 2


def test_append_mode_adds_a_version_after_the_latest(engine, alice, corpus):
    pipeline = create_pipeline(alice, curate_document(mode="append"))
    for _ in range(2):
        assert wait_for_run(start_run(pipeline, {"source": "raw"}, user=alice)).state == "succeeded"
    versions = DatasetVersion.objects.filter(dataset__name="curated").order_by("number")
    assert [v.record_count for v in versions] == [2, 4]
    assert [r["id"] for r in all_records(versions[1].manifest)] == [1, 4, 1, 4]


def test_a_bad_operator_config_is_refused_before_the_run(alice):
    from pipelines.graph_validation import validate_document

    document = curate_document()
    document["nodes"][1]["config"]["operators"][2]["config"] = {"min_length": "twenty"}
    errors = [(e.node, e.field) for e in validate_document(document)]
    assert ("clean", "nodes[1].config.operators[2].config.min_length") in errors


def test_an_unknown_dataset_fails_the_run_naming_it(engine, alice):
    doc = {"name": "missing", "nodes": [node("read", "input_dataset", dataset="nope")]}
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "failed"
    assert "dataset 'nope' does not exist" in run.error


@pytest.fixture
def import_root() -> Path:
    root = Path(settings.DATAMATE_IMPORT_ROOTS[0])
    (root / "collect").mkdir(parents=True, exist_ok=True)
    for name in ("a.md", "b.md"):
        (root / "collect" / name).write_text(f"# {name}\n\nSome notes about {name}.\n")
    (root / "collect" / "rows.jsonl").write_bytes(b'{"text": "from jsonl"}\n')
    return root


def test_collection_reads_files_under_the_import_root(engine, alice, import_root):
    doc = {
        "name": "collect",
        "nodes": [
            node("grab", "data_collection", source="files", paths=["collect/*.md", "collect/rows.jsonl"]),
            node("keep", "output_dataset", dataset="notes"),
        ],
        "edges": [edge("grab", "keep")],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded", run.error
    version = Dataset.objects.get(owner=alice, name="notes").versions.get()
    assert all_records(version.manifest) == [
        {"path": "collect/a.md", "text": "# a.md\n\nSome notes about a.md.\n"},
        {"path": "collect/b.md", "text": "# b.md\n\nSome notes about b.md.\n"},
        {"text": "from jsonl"},
    ]


@pytest.mark.parametrize("path", ["../secrets.txt", "/etc/passwd", "collect/../../x", "*/../../*"])
def test_collection_refuses_paths_outside_the_import_root(engine, alice, import_root, path):
    doc = {"name": "escape", "nodes": [node("grab", "data_collection", source="files", paths=[path])]}
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "failed"
    assert "paths:" in run.error
    assert "outside the import roots" in run.error or "'..' is not allowed" in run.error


def test_collection_does_not_follow_a_symlink_out_of_the_root(engine, alice, import_root, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("do not read")
    link = import_root / "collect" / "link.md"
    link.unlink(missing_ok=True)
    link.symlink_to(secret)
    try:
        doc = {"name": "link", "nodes": [node("grab", "data_collection", source="files", paths=["collect/*.md"])]}
        run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    finally:
        link.unlink()
    assert run.state == "failed"
    assert "outside the import roots" in run.error
    assert NodeRun.objects.get(run=run).output in (None, {})


@pytest.mark.parametrize("fmt", ["jsonl", "text"])
def test_collection_of_a_folder_in_a_file_format_fails_saying_so(engine, alice, import_root, fmt):
    doc = {"name": "folder", "nodes": [node("grab", "data_collection", source="files", paths=["collect"], format=fmt)]}
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "failed"
    assert run.error == "grab: collect is a folder: read it with format 'auto', or name its files with a glob"


def test_synthesis_from_nothing_and_per_record(engine, alice, corpus):
    doc = {
        "name": "synth",
        "parameters": [{"name": "topic", "type": "string", "default": "fractions"}],
        "nodes": [
            node("make", "data_synthesis", prompt_template="Q{{ index }}: explain {{ params.topic }}", count=3),
            node("read", "input_dataset", dataset="raw"),
            node("ask", "data_synthesis", prompt_template="Summarise: {{ record.text[:10] }}", output_field="prompt"),
        ],
        "edges": [edge("read", "ask")],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "succeeded", run.error
    assert node_states(run) == {"make": "succeeded", "read": "succeeded", "ask": "succeeded"}
    made = all_records(outputs(run)["make"]["manifest"])
    assert [r["text"] for r in made] == ["Q0: explain fractions", "Q1: explain fractions", "Q2: explain fractions"]
    asked = all_records(outputs(run)["ask"]["manifest"])
    assert [r["prompt"] for r in asked] == [
        "Summarise: <p>Adding ",
        "Summarise: short",
        "Summarise: <p>Adding ",
        "Summarise: The weathe",
    ]


def test_the_demo_pipeline_cleans_the_demo_dataset(engine, alice):
    from pipelines.models import Pipeline
    from pipelines.services import create_demo_pipelines

    services.create_demo_dataset(alice)
    create_demo_pipelines(alice)
    pipeline = Pipeline.objects.get(owner=alice, name="Clean and deduplicate")
    run = wait_for_run(start_run(pipeline, {"dataset": services.DEMO_DATASET}, user=alice), timeout=60)
    assert run.state == "succeeded", run.error
    clean = outputs(run)["clean"]
    # 300 made-up pages: every tenth is a fragment (too short), every tenth a duplicate.
    assert clean["count"] == 240
    steps = {step["name"]: step for step in clean["operators"]["steps"]}
    assert steps["text_length"]["dropped"] == {"too_short": 30}
    assert sum(steps["exact_dedup"]["dropped"].values()) == 30
    published = Dataset.objects.get(owner=alice, name=f"{services.DEMO_DATASET}-clean").versions.get()
    first = all_records(published.manifest)[0]["text"]
    assert "<div>" not in first and "tutor0@example.org" not in first and "  " not in first


def test_testing_an_output_dataset_node_writes_nothing(engine, alice, alice_api, corpus):
    pipeline = create_pipeline(alice, curate_document())
    upstream = {"label": {"manifest": services.latest_version(corpus).manifest}}
    response = alice_api.post(
        f"/api/pipelines/{pipeline.pk}/nodes/publish/test/",
        {"inputs": upstream, "params": {"source": "raw"}, "wait": 30},
        format="json",
    )
    assert response.status_code == 200, response.json()
    result = response.json()
    assert result["error"] is None, result
    assert result["output"] == {"dataset": "curated", "mode": "overwrite", "count": 4, "written": False}
    assert not Dataset.objects.filter(owner=alice, name="curated").exists()


def test_a_failed_first_write_leaves_no_empty_dataset(engine, alice, corpus):
    # The input's stored parts are gone (a storage fault): the write fails half-way.
    records.delete_parts(services.latest_version(corpus).manifest)
    doc = {
        "name": "copy",
        "nodes": [node("read", "input_dataset", dataset="raw"), node("publish", "output_dataset", dataset="fresh")],
        "edges": [edge("read", "publish")],
    }
    run = wait_for_run(start_run(create_pipeline(alice, doc), user=alice))
    assert run.state == "failed"
    assert "is missing from storage" in run.error
    assert not Dataset.objects.filter(owner=alice, name="fresh").exists()
