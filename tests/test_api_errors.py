"""Oversized and pathological request bodies get a clear 4xx, never a 500."""

import json

import pytest

from pipelines.models import Pipeline

pytestmark = pytest.mark.django_db


def test_oversized_body_is_413_and_creates_nothing(alice_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    body = json.dumps({"name": "big", "description": "a" * 200_000})
    response = alice_api.post("/api/pipelines/import/", body, content_type="application/json")
    assert response.status_code == 413
    assert "100000 bytes" in response.json()["detail"]
    assert not Pipeline.objects.exists()


def test_deeply_nested_body_is_400(alice_api):
    body = "[" * 100_000 + "]" * 100_000
    response = alice_api.post("/api/pipelines/import/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON body is nested too deeply"}
