"""Label Studio round trips: a version out as review tasks, the reviewed export back in as a version."""

import io
import json

from django.core.files.uploadedfile import SimpleUploadedFile
import pytest

from datasets import exporters, records, services
from datasets.errors import DatasetError, DatasetImportError
from datasets.models import DatasetVersion
from tests.datasets import builders
from tests.datasets.conftest import stored_files

pytestmark = pytest.mark.django_db

LABELLED = [
    {"id": 1, "text": "1/2 + 1/4 = 3/4", "label": "math", "quality": 0.9},
    {"id": 2, "text": "It rains in the hills.", "label": "other", "quality": 0.4},
    {"id": 3, "text": "Nothing decided yet.", "label": None},
    {"id": 4, "text": "Both, perhaps.", "label": ["math", "other"]},
]


@pytest.fixture
def dataset(alice):
    return services.create_dataset(owner=alice, name="labelled")


def import_bytes(dataset, name: str, data: bytes, fmt: str | None = None):
    return services.import_version(dataset, services.Source.upload(io.BytesIO(data), name), fmt)


def all_records(version) -> list[dict]:
    return [record for batch in records.iter_records(version.manifest) for record in batch]


def exported_tasks(version, **options) -> list[dict]:
    export = services.export_version(version, "label_studio", options)
    assert export.filename == f"labelled-v{version.number}.json"
    assert export.content_type == "application/json"
    return json.loads(b"".join(export.chunks))


def choices(labels, from_name="label"):
    return {"from_name": from_name, "to_name": "text", "type": "choices", "value": {"choices": labels}}


def test_export_gives_one_task_per_record_with_the_label_as_a_prediction(dataset):
    version = import_bytes(dataset, "l.jsonl", builders.jsonl_bytes(LABELLED))
    tasks = exported_tasks(version, score_field="quality")
    assert tasks[0] == {
        "data": {"id": 1, "text": "1/2 + 1/4 = 3/4", "quality": 0.9},
        "predictions": [{"result": [choices(["math"])], "model_version": "datamate", "score": 0.9}],
    }
    assert tasks[2] == {"data": {"id": 3, "text": "Nothing decided yet."}}
    assert tasks[3]["predictions"][0]["result"] == [choices(["math", "other"])]


def test_export_as_annotations_under_other_field_names(dataset):
    rows = [{"body": "x", "topic": "math"}]
    version = import_bytes(dataset, "t.jsonl", builders.jsonl_bytes(rows))
    (task,) = exported_tasks(version, label_field="topic", text_field="body", label_as="annotations")
    assert task == {
        "data": {"body": "x"},
        "annotations": [
            {"result": [{"from_name": "topic", "to_name": "body", "type": "choices", "value": {"choices": ["math"]}}]}
        ],
    }


def test_export_streams_in_batches(dataset, monkeypatch):
    rows = [{"text": f"t{n}", "label": "a"} for n in range(25)]
    version = import_bytes(dataset, "many.jsonl", builders.jsonl_bytes(rows))
    monkeypatch.setattr(exporters, "EXPORT_BATCH", 10)
    chunks = list(services.export_version(version, "label_studio").chunks)
    assert len(chunks) == 5  # "[", three batches, "]"
    assert [task["data"]["text"] for task in json.loads(b"".join(chunks))] == [f"t{n}" for n in range(25)]


def test_the_reviewed_export_comes_back_as_a_version_with_the_human_labels(dataset):
    version = import_bytes(dataset, "l.jsonl", builders.jsonl_bytes(LABELLED))
    tasks = exported_tasks(version)
    # What Label Studio exports after review: ids, annotations by people, predictions kept.
    tasks[0]["annotations"] = [
        {"id": 10, "result": [choices(["other"])], "was_cancelled": False, "completed_by": 1},
        {"id": 11, "result": [choices(["math"])], "was_cancelled": False, "ground_truth": True},
        {"id": 12, "result": [choices(["other"])], "was_cancelled": False},
    ]
    tasks[1]["annotations"] = [
        {"id": 13, "result": [choices(["math"])]},
        {"id": 14, "result": [choices(["other"])], "was_cancelled": True},
    ]
    tasks[2]["annotations"] = [{"id": 15, "result": [choices(["math", "other"])]}]
    for number, task in enumerate(tasks, start=1):
        task["id"] = 100 + number
    reviewed = import_bytes(dataset, "project-1.json", json.dumps(tasks, indent=1).encode(), "label_studio")
    assert reviewed.number == 2
    assert all_records(reviewed) == [
        {"id": 1, "text": "1/2 + 1/4 = 3/4", "quality": 0.9, "label": "math"},  # the ground truth
        {"id": 2, "text": "It rains in the hills.", "quality": 0.4, "label": "math"},  # the skip is ignored
        {"id": 3, "text": "Nothing decided yet.", "label": ["math", "other"]},
        {"id": 4, "text": "Both, perhaps."},  # not reviewed: no label
    ]
    assert "project-1.json (label_studio)" in reviewed.source


def test_other_result_types_are_ignored_and_each_choices_tag_becomes_a_field(dataset):
    tasks = [
        {
            "data": {"text": "t"},
            "annotations": [
                {"result": [{"type": "textarea", "value": {"text": ["note"]}}, choices(["pos"], "sentiment")]}
            ],
        }
    ]
    version = import_bytes(dataset, "x.json", json.dumps(tasks).encode(), "label_studio")
    assert all_records(version) == [{"text": "t", "sentiment": "pos"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"data": {}}', "labels.json, line 1: expected a JSON array of objects ('[')"),
        (
            b'[\n{"data": {"text": "a"}},\n{"id": 7, "text": "b"}\n]',
            'labels.json, line 3: task 2 (id 7): has no "data" object',
        ),
        (
            b'[\n{"data": {}},\n{"data": {}},\n7]',
            "labels.json, line 4: task 3: a task must be a JSON object, not integer",
        ),
        (
            b'[{"data": {}, "annotations": [{"result": [{"type": "choices", "value": {"choices": ["a"]}}]}]}]',
            'labels.json, line 1: task 1: annotation result 1 has no "from_name"',
        ),
        (
            b'[{"data": {}, "annotations": [{"result": [{"type": "choices", "from_name": "l", "value": {}}]}]}]',
            "labels.json, line 1: task 1: the choices of 'l' must be a non-empty list of strings",
        ),
        (b'[{"data": {}, "annotations": {}}]', 'labels.json, line 1: task 1: "annotations" must be a list of objects'),
    ],
)
def test_a_bad_export_names_the_file_and_the_task_and_leaves_nothing(dataset, media_root, content, message):
    with pytest.raises(DatasetImportError) as error:
        import_bytes(dataset, "labels.json", content, "label_studio")
    assert error.value.message == message
    assert not DatasetVersion.objects.exists()
    assert stored_files(media_root) == []


def test_a_json_file_is_not_taken_for_label_studio_unless_asked(dataset):
    tasks = [{"data": {"text": "a"}}]
    version = import_bytes(dataset, "tasks.json", json.dumps(tasks).encode())
    assert all_records(version) == [{"data": {"text": "a"}}]


@pytest.mark.parametrize(
    ("options", "field"),
    [({"label_as": "votes"}, "label_as"), ({"label_field": " "}, "label_field")],
)
def test_bad_export_options_are_refused_before_anything_is_sent(dataset, options, field):
    version = import_bytes(dataset, "l.jsonl", builders.jsonl_bytes(LABELLED))
    with pytest.raises(DatasetError) as error:
        services.export_version(version, "label_studio", options)
    assert error.value.field == field


# --- API ------------------------------------------------------------------------------


def test_api_round_trip(alice_api, dataset):
    version = import_bytes(dataset, "l.jsonl", builders.jsonl_bytes(LABELLED))
    url = f"/api/datasets/{dataset.pk}/versions/"
    response = alice_api.get(f"{url}{version.number}/export/", {"format": "label_studio", "score_field": "quality"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="labelled-v1.json"'
    tasks = json.loads(b"".join(response.streaming_content))
    assert tasks[0]["predictions"][0]["score"] == 0.9
    for task in tasks:
        task["annotations"] = [{"result": [choices(["reviewed"])]}]
    upload = SimpleUploadedFile("export.json", json.dumps(tasks).encode())
    created = alice_api.post(url, {"file": upload, "format": "label_studio"}, format="multipart")
    assert created.status_code == 201, created.content
    assert {record["label"] for record in all_records(DatasetVersion.objects.get(number=2))} == {"reviewed"}


def test_api_errors_name_the_field(alice_api, dataset):
    version = import_bytes(dataset, "l.jsonl", builders.jsonl_bytes(LABELLED))
    url = f"/api/datasets/{dataset.pk}/versions/"
    bad_option = alice_api.get(f"{url}{version.number}/export/", {"format": "label_studio", "label_as": "x"})
    assert bad_option.status_code == 400
    assert bad_option.json()["errors"][0]["field"] == "label_as"
    wrong_format = alice_api.get(f"{url}{version.number}/export/", {"format": "csv", "label_field": "label"})
    assert wrong_format.status_code == 400
    assert wrong_format.json()["errors"] == [
        {"field": "label_field", "message": "is an option of format label_studio, not csv"}
    ]
    upload = SimpleUploadedFile("export.json", b'[{"nodata": 1}]')
    bad_file = alice_api.post(url, {"file": upload, "format": "label_studio"}, format="multipart")
    assert bad_file.status_code == 400
    assert bad_file.json()["errors"] == [
        {"field": "file", "message": 'export.json, line 1: task 1: has no "data" object'}
    ]
