"""The schedules API, the preview endpoint, the OpenAPI schema and the admin."""

import io

from django.core.management import call_command
from django.test import Client
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from pipelines import schedules
from pipelines.models import Schedule
from tests.factories import create_user


def url(pipeline, schedule=None):
    base = f"/api/pipelines/{pipeline.pk}/schedules/"
    return f"{base}{schedule}/" if schedule else base


def test_create_read_change_delete(alice_api, nightly):
    created = alice_api.post(
        url(nightly),
        {"cron": "0 0 2 * * ?", "timezone": "Europe/Paris", "params": {"n": 3}, "overlap": "queue"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["description"] == "At 02:00 (Europe/Paris)"
    crontab = body["crontab"]
    assert crontab == {"minute": "0", "hour": "2", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*"}
    assert len(body["next_runs"]) == 5 and all(t.endswith(("+01:00", "+02:00")) for t in body["next_runs"])
    assert body["overlap"] == "queue" and body["enabled"] is True and body["catch_up"] is False
    assert body["version"] is None and body["dialect"] == "quartz"
    schedule_id = body["id"]
    assert PeriodicTask.objects.get(pk=body["periodic_task"]).crontab.hour == "2"

    listed = alice_api.get(url(nightly)).json()
    assert [item["id"] for item in listed["results"]] == [schedule_id]

    changed = alice_api.patch(url(nightly, schedule_id), {"cron": "30 6 * * MON-FRI"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["description"] == "At 06:30, Monday through Friday (Europe/Paris)"
    assert changed.json()["params"] == {"n": 3}  # untouched by PATCH
    task = PeriodicTask.objects.get(pk=body["periodic_task"])
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "6", "1-5")

    replaced = alice_api.put(url(nightly, schedule_id), {"cron": "@hourly", "params": {"n": 4}}, format="json")
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["timezone"] == "UTC" and replaced.json()["overlap"] == "skip"  # defaults again

    disabled = alice_api.patch(url(nightly, schedule_id), {"enabled": False}, format="json")
    assert disabled.json()["next_runs"] == [] and not PeriodicTask.objects.get(pk=body["periodic_task"]).enabled

    assert alice_api.delete(url(nightly, schedule_id)).status_code == 204
    assert not Schedule.objects.exists() and not PeriodicTask.objects.exists()


def test_bad_values_answer_400_naming_the_field(alice_api, nightly):
    cases = [
        ({"cron": "0 0 2 * * ? 2027", "params": {"n": 1}}, "cron", "year `2027`: Celery's crontab has no year"),
        ({"cron": "0 0 2 L * ?", "params": {"n": 1}}, "cron", "day-of-month `L`: `L` (the last day)"),
        ({"cron": "0 2 * * *", "timezone": "Europe/Nowhere", "params": {"n": 1}}, "timezone", "'Europe/Nowhere'"),
        ({"cron": "0 2 * * *", "params": {"n": "x"}}, "params.n", "must be an integer"),
        ({"cron": "0 2 * * *", "params": {"n": 1, "m": 2}}, "params.m", "is not a parameter"),
        ({"cron": "0 2 * * *", "params": {"n": 1}, "version": 7}, "version", "this pipeline has no version 7"),
        (
            {"cron": "0 2 * * *", "params": {"n": 1}, "start_at": "2026-02-01T00:00Z", "end_at": "2026-01-01T00:00Z"},
            "end_at",
            "must be after start_at",
        ),
    ]
    for payload, field, message in cases:
        response = alice_api.post(url(nightly), payload, format="json")
        assert response.status_code == 400, (payload, response.content)
        errors = response.json()["errors"]
        assert [error["field"] for error in errors] == [field], errors
        assert message in errors[0]["message"]
    # Values of the wrong type are refused by the serializer, still naming the field.
    wrong_type = alice_api.post(url(nightly), {"cron": "0 2 * * *", "overlap": "sometimes"}, format="json")
    assert wrong_type.status_code == 400
    assert [error["field"] for error in wrong_type.json()["errors"]] == ["overlap"]
    missing = alice_api.post(url(nightly), {"params": {"n": 1}}, format="json")
    assert missing.status_code == 400 and [error["field"] for error in missing.json()["errors"]] == ["cron"]
    assert not Schedule.objects.exists() and not PeriodicTask.objects.exists()

    schedule = schedules.create_schedule(nightly, cron="0 2 * * *", params={"n": 1})
    refused = alice_api.patch(url(nightly, schedule.pk), {"cron": "0 0 ? * 6#3"}, format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "cron"
    schedule.refresh_from_db()
    assert schedule.cron == "0 2 * * *"


def test_only_the_owner_sees_and_changes_schedules(nightly, bob):
    schedule = schedules.create_schedule(nightly, cron="0 2 * * *", params={"n": 1})
    client = APIClient()
    client.force_authenticate(bob)

    assert client.get(url(nightly)).status_code == 404
    assert client.get(url(nightly, schedule.pk)).status_code == 404
    assert client.post(url(nightly), {"cron": "0 3 * * *", "params": {"n": 1}}, format="json").status_code == 404
    assert client.patch(url(nightly, schedule.pk), {"enabled": False}, format="json").status_code == 404
    assert client.delete(url(nightly, schedule.pk)).status_code == 404
    assert Schedule.objects.get().enabled and Schedule.objects.count() == 1
    assert APIClient().get(url(nightly)).status_code == 401


def test_preview(alice_api):
    response = alice_api.post("/api/schedules/preview/", {"cron": "0 0 9 ? * 2", "timezone": "America/New_York"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["description"] == "At 09:00, only on Monday (America/New_York)"
    assert body["crontab"]["day_of_week"] == "1"
    assert len(body["next_runs"]) == 5
    assert not Schedule.objects.exists()

    refused = alice_api.post("/api/schedules/preview/", {"cron": "0 0 9 ? * 2#1", "timezone": "Mars"}, format="json")
    assert refused.status_code == 400
    assert [error["field"] for error in refused.json()["errors"]] == ["cron", "timezone"]
    assert refused.json()["errors"][0]["message"].startswith("day-of-week `2#1`: `#`")

    assert APIClient().post("/api/schedules/preview/", {"cron": "0 2 * * *"}).status_code == 401


def test_openapi_schema_describes_schedules_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out), stderr=io.StringIO())
    schema = out.read_text()
    assert "/api/pipelines/{pipeline_pk}/schedules/{id}/:" in schema
    assert "/api/schedules/preview/:" in schema


def test_admin_shows_words_and_next_runs_and_writes_the_beat_entry(nightly):
    create_user("root", staff=True)
    client = Client()
    client.login(username="root", password="pw-for-tests-1")
    form = {
        "pipeline": nightly.pk,
        "cron": "0 0 2 * * ?",
        "timezone": "Asia/Tokyo",
        "params": '{"n": 2}',
        "overlap": "skip",
        "enabled": "on",
    }
    refused = client.post("/admin/pipelines/schedule/add/", {**form, "cron": "0 0 2 * * ? 2030"})
    assert refused.status_code == 200 and b"Celery&#x27;s crontab has no year field" in refused.content
    assert not Schedule.objects.exists()

    created = client.post("/admin/pipelines/schedule/add/", form)
    assert created.status_code == 302, created.content.decode()[:3000]
    schedule = Schedule.objects.get()
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).crontab.hour == "2"

    page = client.get(f"/admin/pipelines/schedule/{schedule.pk}/change/").content.decode()
    assert "At 02:00 (Asia/Tokyo)" in page
    assert page.count("T02:00:00+09:00") == 5
    assert "At 02:00 (Asia/Tokyo)" in client.get("/admin/pipelines/schedule/").content.decode()

    client.post(f"/admin/pipelines/schedule/{schedule.pk}/delete/", {"post": "yes"})
    assert not Schedule.objects.exists() and not PeriodicTask.objects.exists()
