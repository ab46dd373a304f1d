"""The datasets REST API: CRUD, imports, preview, stats, export, limits and access."""

import io
import json

from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import AsyncClient
import pyarrow.parquet as pq
import pytest

from datasets import services
from datasets.models import Dataset, DatasetVersion
from tests.datasets import builders
from tests.datasets.conftest import stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(alice):
    return services.create_dataset(owner=alice, name="corpus", tags=["web"])


@pytest.fixture
def version(dataset, alice):
    data = builders.jsonl_bytes(builders.sample_records(12))
    return services.import_version(dataset, services.Source.upload(io.BytesIO(data), "corpus.jsonl"), user=alice)


def versions_url(dataset, suffix=""):
    return f"/api/datasets/{dataset.pk}/versions/{suffix}"


def post_file(client, dataset, name, data, **fields):
    return client.post(versions_url(dataset), {"file": SimpleUploadedFile(name, data), **fields}, format="multipart")


# -- datasets ------------------------------------------------------------------------
def test_create_list_update_delete(alice_api, alice):
    response = alice_api.post("/api/datasets/", {"name": "corpus", "description": "d", "tags": ["en"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["owner"] == "alice" and body["tags"] == ["en"] and body["version_count"] == 0
    url = f"/api/datasets/{body['id']}/"

    listing = alice_api.get("/api/datasets/").json()
    assert [d["name"] for d in listing["results"]] == ["corpus"]
    assert alice_api.patch(url, {"description": "new"}, format="json").json()["description"] == "new"
    assert alice_api.delete(url).status_code == 204
    assert not Dataset.objects.exists()


def test_duplicate_name_and_bad_tags_are_400_naming_the_field(alice_api, dataset):
    response = alice_api.post("/api/datasets/", {"name": "corpus"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"errors": [{"field": "name", "message": "you already have a dataset named 'corpus'"}]}
    response = alice_api.post("/api/datasets/", {"name": "x", "tags": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "tags"


def test_deleting_a_dataset_deletes_its_files(alice_api, version, media_root, django_capture_on_commit_callbacks):
    assert stored_files(media_root)
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(f"/api/datasets/{version.dataset_id}/").status_code == 204
    assert stored_files(media_root) == []


# -- versions ------------------------------------------------------------------------
def test_upload_creates_a_version(alice_api, dataset):
    response = post_file(
        alice_api, dataset, "corpus.csv", builders.csv_bytes(builders.flat(builders.sample_records(4)))
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 1 and body["record_count"] == 4
    assert body["fields"] == [{"name": n, "types": ["string"]} for n in ("id", "text", "lang")]
    assert body["checksum"].startswith("sha256:")
    assert body["created_by"] == "alice"
    assert body["source"] == "upload corpus.csv (csv)"
    assert len(body["samples"]) == 4

    listing = alice_api.get(versions_url(dataset)).json()
    assert [v["number"] for v in listing["results"]] == [1]
    assert alice_api.get(versions_url(dataset, "1/")).json()["record_count"] == 4
    assert alice_api.get(versions_url(dataset, "2/")).status_code == 404


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("big.jsonl", builders.jsonl_bytes(builders.sample_records(300))),
        ("big.parquet", builders.parquet_bytes(builders.sample_records(300))),
        ("big.csv", builders.csv_bytes(builders.flat(builders.sample_records(300)))),
    ],
)
def test_uploads_spooled_to_a_temp_file_import_the_same(alice_api, dataset, settings, name, data):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # anything larger goes to a temporary file
    response = post_file(alice_api, dataset, name, data)
    assert response.status_code == 201, response.content
    assert response.json()["record_count"] == 300


def test_upload_with_explicit_format(alice_api, dataset):
    response = post_file(alice_api, dataset, "data.txt", b'{"a": 1}\n', format="jsonl")
    assert response.status_code == 201, response.content


def test_import_from_a_server_path(alice_api, dataset, import_root):
    (import_root / "data.json").write_bytes(builders.json_bytes(builders.sample_records(5)))
    response = alice_api.post(versions_url(dataset), {"path": "data.json"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "path data.json (json)"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../etc/passwd", "'..' is not allowed"),
        ("/etc/passwd", "outside the import roots"),
        ("nope.jsonl", "no such file"),
    ],
)
def test_server_path_escapes_are_400_naming_path(alice_api, dataset, import_root, path, message):
    response = alice_api.post(versions_url(dataset), {"path": path}, format="json")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "path" and message in error["message"]


def test_bad_upload_is_400_naming_file_and_line(alice_api, dataset, media_root):
    response = post_file(alice_api, dataset, "bad.jsonl", b'{"a": 1}\n{"a": 2}\n{nope}\n')
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "file"
    assert error["message"].startswith("bad.jsonl, line 3: not valid JSON")
    assert not DatasetVersion.objects.exists()
    assert stored_files(media_root) == []


def test_missing_file_and_unknown_format_are_400(alice_api, dataset):
    response = alice_api.post(versions_url(dataset), {}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "file"
    response = post_file(alice_api, dataset, "a.jsonl", b'{"a": 1}\n', format="xml")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "format"


def test_a_body_that_is_not_an_object_is_400(alice_api, dataset):
    response = alice_api.post(versions_url(dataset), ["data.jsonl"], format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "path"
    response = alice_api.post(versions_url(dataset), {"path": 5}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "path", "message": "must be a string"}]


def test_upload_over_the_limit_is_413(alice_api, dataset, settings, media_root):
    settings.DATAMATE_MAX_UPLOAD_BYTES = 1000
    response = post_file(alice_api, dataset, "big.jsonl", b'{"text": "' + b"x" * 2000 + b'"}\n')
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]
    assert not DatasetVersion.objects.exists()
    assert stored_files(media_root) == []
    # Just under the limit is fine.
    assert post_file(alice_api, dataset, "small.jsonl", b'{"text": "x"}\n').status_code == 201


def test_versions_cannot_be_edited(alice_api, version):
    assert alice_api.put(versions_url(version.dataset, "1/"), {}, format="json").status_code == 405
    assert alice_api.patch(versions_url(version.dataset, "1/"), {}, format="json").status_code == 405


def test_deleting_a_version_deletes_its_files(alice_api, version, media_root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(versions_url(version.dataset, "1/")).status_code == 204
    assert stored_files(media_root) == []


# -- preview, stats, export ----------------------------------------------------------
def test_records_are_paged_and_filtered(alice_api, version):
    url = versions_url(version.dataset, "1/records/")
    page = alice_api.get(url, {"page": 2, "page_size": 5}).json()
    assert (page["count"], page["page"], page["pages"]) == (12, 2, 3)
    assert [r["id"] for r in page["records"]] == [5, 6, 7, 8, 9]
    page = alice_api.get(url, {"page": 3, "page_size": 5, "fields": "id,lang"}).json()
    assert page["records"] == [{"id": 10, "lang": "en"}, {"id": 11, "lang": "en"}]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "x"}, "page"),
        ({"page": 0}, "page"),
        ({"page_size": 10_000}, "page_size"),
        ({"fields": "nope"}, "fields"),
    ],
)
def test_bad_preview_parameters_are_400(alice_api, version, params, field):
    response = alice_api.get(versions_url(version.dataset, "1/records/"), params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_stats(alice_api, version):
    body = alice_api.get(versions_url(version.dataset, "1/stats/")).json()
    assert body["count"] == 12 and body["text_field"] == "text"
    fields = {field["name"]: field for field in body["fields"]}
    assert fields["lang"]["top_values"] == [{"value": "en", "count": 8}, {"value": "de", "count": 4}]
    assert fields["id"]["numeric"] == {"min": 0, "max": 11, "mean": 5.5}
    assert fields["meta"]["types"] == {"object": 12}
    assert sum(b["count"] for b in fields["text"]["length"]["histogram"]) == 12
    # Computed once, then served from the version row.
    assert DatasetVersion.objects.get(pk=version.pk).stats == body


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_streams_a_file(alice_api, version, fmt):
    response = alice_api.get(versions_url(version.dataset, "1/export/"), {"format": fmt})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="corpus-v1.{fmt}"'
    data = b"".join(response.streaming_content)
    if fmt == "jsonl":
        assert [json.loads(line) for line in data.splitlines()] == builders.sample_records(12)
    elif fmt == "csv":
        assert data.startswith(b"id,text,lang,score,ok,meta\n")
    else:
        assert pq.read_table(io.BytesIO(data)).to_pylist() == builders.sample_records(12)


def test_export_under_asgi_streams_without_reading_everything_first(alice, version, recwarn):
    """Daphne serves the site: the export must be an async iterator there, or Django would
    turn it into a list (the whole file in memory) and warn."""
    client = AsyncClient()
    client.force_login(alice)

    async def download():
        response = await client.get(versions_url(version.dataset, "1/export/"), {"format": "jsonl"})
        assert response.status_code == 200 and response.is_async
        return b"".join([chunk async for chunk in response.streaming_content])

    data = async_to_sync(download)()
    assert [json.loads(line) for line in data.splitlines()] == builders.sample_records(12)
    assert not [w for w in recwarn if "StreamingHttpResponse" in str(w.message)]


def test_export_unknown_format_is_400(alice_api, version):
    response = alice_api.get(versions_url(version.dataset, "1/export/"), {"format": "xml"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "format"


# -- access --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("get", "versions/"),
        ("post", "versions/"),
        ("get", "versions/1/"),
        ("delete", "versions/1/"),
        ("get", "versions/1/records/"),
        ("get", "versions/1/stats/"),
        ("get", "versions/1/export/"),
    ],
)
def test_other_users_get_404(bob_api, version, method, suffix):
    response = getattr(bob_api, method)(f"/api/datasets/{version.dataset_id}/{suffix}")
    assert response.status_code == 404
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_other_users_do_not_see_the_dataset_in_lists(bob_api, version):
    assert bob_api.get("/api/datasets/").json()["results"] == []


def test_anonymous_is_refused(api_client, version):
    assert api_client.get("/api/datasets/").status_code == 401


# -- schema --------------------------------------------------------------------------
def test_openapi_schema_has_the_dataset_endpoints_and_no_warnings(tmp_path):
    out = tmp_path / "schema.json"
    call_command("spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json", "--file", str(out))
    paths = json.loads(out.read_text())["paths"]
    for path in [
        "/api/datasets/",
        "/api/datasets/{id}/",
        "/api/datasets/{dataset_pk}/versions/",
        "/api/datasets/{dataset_pk}/versions/{number}/",
        "/api/datasets/{dataset_pk}/versions/{number}/records/",
        "/api/datasets/{dataset_pk}/versions/{number}/stats/",
        "/api/datasets/{dataset_pk}/versions/{number}/export/",
    ]:
        assert path in paths, path
    assert "multipart/form-data" in paths["/api/datasets/{dataset_pk}/versions/"]["post"]["requestBody"]["content"]
