"""The dataset pages (list, detail with preview, stats and chart) and the admin."""

import io
import re

from django.test import Client
import pytest

from datasets import services
from tests.datasets import builders
from tests.factories import logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(alice):
    dataset = services.create_dataset(owner=alice, name="Web corpus", description="crawled", tags=["en", "web"])
    records = builders.sample_records(45)
    records[0]["text"] = "<script>alert(1)</script>"
    data = builders.jsonl_bytes(records)
    return services.import_version(dataset, services.Source.upload(io.BytesIO(data), "web.jsonl"), user=alice)


def test_list_shows_own_datasets(alice, bob, version):
    services.create_dataset(owner=bob, name="Bob's secret")
    html = logged_in(alice).get("/datasets/").content.decode()
    assert f'href="/datasets/{version.dataset_id}/"' in html
    assert "Web corpus" in html and ">v1<" in html
    assert "secret" not in html


def test_nav_links_to_datasets(alice):
    assert 'href="/datasets/"' in logged_in(alice).get("/pipelines/").content.decode()


def test_detail_shows_versions_preview_stats_and_chart(alice, version):
    page = logged_in(alice).get(f"/datasets/{version.dataset_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "v1" in html and "upload web.jsonl (jsonl)" in html
    assert '<svg class="ds-chart" id="length-histogram"' in html
    assert html.count("<rect ") >= 1
    assert "page 1 of 3" in html
    # Record values are escaped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    # One download link per export format, each of which works.
    links = re.findall(rf'href="(/api/datasets/{version.dataset_id}/versions/1/export/\?format=(\w+))"', html)
    assert [fmt for _, fmt in links] == ["jsonl", "csv", "parquet", "label_studio"]
    for link, fmt in links:
        download = logged_in(alice).get(link)
        assert download.status_code == 200, (fmt, download.content[:200])
        assert b"".join(download.streaming_content if download.streaming else [download.content]), fmt

    page2 = logged_in(alice).get(f"/datasets/{version.dataset_id}/?version=1&page=2").content.decode()
    assert "page 2 of 3" in page2 and "Document 20" in page2


def test_detail_of_a_dataset_without_versions(alice):
    dataset = services.create_dataset(owner=alice, name="empty")
    html = logged_in(alice).get(f"/datasets/{dataset.pk}/").content.decode()
    assert "No versions yet" in html


def test_unknown_version_is_404(alice, version):
    assert logged_in(alice).get(f"/datasets/{version.dataset_id}/?version=9").status_code == 404


@pytest.mark.parametrize("path", ["/datasets/{id}/", "/datasets/{id}/?version=1", "/datasets/999999/"])
def test_other_users_get_404(bob, version, path):
    assert logged_in(bob).get(path.format(id=version.dataset_id)).status_code == 404


def test_staff_see_every_dataset(staff, version):
    assert logged_in(staff).get(f"/datasets/{version.dataset_id}/").status_code == 200


@pytest.mark.parametrize("path", ["/datasets/", "/datasets/{id}/"])
def test_anonymous_users_are_sent_to_the_login_page(version, path):
    path = path.format(id=version.dataset_id)
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


# -- admin ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/admin/datasets/dataset/",
        "/admin/datasets/dataset/{dataset}/change/",
        "/admin/datasets/datasetversion/",
        "/admin/datasets/datasetversion/{version}/change/",
    ],
)
def test_admin_pages_load(staff, version, path):
    response = logged_in(staff).get(path.format(dataset=version.dataset_id, version=version.pk))
    assert response.status_code == 200


def test_admin_version_page_is_read_only_and_shows_the_manifest(staff, version):
    html = logged_in(staff).get(f"/admin/datasets/datasetversion/{version.pk}/change/").content.decode()
    assert version.manifest["checksum"] in html
    assert 'name="_save"' not in html
    assert logged_in(staff).get("/admin/datasets/datasetversion/add/").status_code == 403
