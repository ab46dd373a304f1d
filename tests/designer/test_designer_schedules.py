"""Schedules in a real browser: create one with a cron expression and read it back in
words with its next five fire times as you type; refusals shown at their field; edit and
delete."""

from __future__ import annotations

from playwright.sync_api import expect
import pytest

from pipelines import schedules
from pipelines.models import Schedule
from tests.designer.conftest import log_in, open_designer
from tests.factories import create_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DOCUMENT = {
    "name": "Nightly curation",
    "parameters": [
        {"name": "limit", "type": "integer", "required": True},
        {"name": "label", "type": "string", "default": "nightly"},
    ],
    "nodes": [{"key": "read", "type": "input_dataset", "config": {"dataset": "news"}, "position": {"x": 0, "y": 0}}],
    "edges": [],
}


def test_create_a_schedule_and_read_its_next_fire_times(engine, page, alice):
    shot = page.screenshots
    pipeline = create_pipeline(alice, DOCUMENT)
    log_in(page, "alice")
    open_designer(page, pipeline)
    page.click("#schedules")
    expect(page.locator(".dm-dialog")).to_contain_text("No schedules yet.")
    page.click("#new-schedule")

    # As you type: a refusal names the field and says why…
    page.fill("#schedule-timezone", "Europe/Paris")
    page.fill("#schedule-cron", "0 0 2 L * ?")
    expect(page.locator("#schedule-cron-error")).to_have_text(
        "Cron: day-of-month `L`: `L` (the last day) cannot be expressed in Celery's crontab"
    )
    shot("cron-refused")
    page.fill("#schedule-timezone", "Mars/Olympus")
    expect(page.locator("#schedule-timezone-error")).to_contain_text("'Mars/Olympus' is not an IANA time zone name")
    page.fill("#schedule-timezone", "Europe/Paris")
    expect(page.locator("#schedule-timezone-error")).to_have_count(0)

    # …and an expression it takes is read back in words, with the next five fire times.
    page.fill("#schedule-cron", "0 0 2 ? * MON-FRI")
    expect(page.locator("#schedule-cron-error")).to_have_count(0)
    expect(page.locator("#schedule-words")).to_contain_text("At 02:00, Monday through Friday (Europe/Paris)")
    expect(page.locator("#schedule-words .badge")).to_have_text("quartz")
    fire_times = page.locator("#schedule-next-runs time")
    expect(fire_times).to_have_count(5)
    expected = schedules.preview("0 0 2 ? * MON-FRI", "Europe/Paris")["next_runs"]
    assert fire_times.evaluate_all("times => times.map(t => t.dateTime)") == expected
    for shown in fire_times.all_inner_texts():
        assert "02:00" in shown and shown[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri"), shown
    shot("next-fire-times")

    # The parameters form comes from the pipeline's definitions; the server names what is missing.
    expect(page.locator("#schedule-params_label")).to_have_attribute("value", "")
    page.click("#save-schedule")
    expect(page.locator(".dm-schedule-params .error-detail")).to_contain_text("is required")
    assert not Schedule.objects.exists()
    shot("parameter-missing")

    page.fill("#schedule-params_limit", "500")
    page.select_option("#schedule-overlap", "queue")
    page.click("#save-schedule")
    item = page.locator(".dm-schedule")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("0 0 2 ? * MON-FRI")
    expect(item).to_contain_text("At 02:00, Monday through Friday (Europe/Paris)")
    expect(item).to_contain_text("limit=500")
    expect(item.locator(".badge")).to_have_text("enabled")
    expect(item.locator(".dm-schedule-next")).to_have_attribute("datetime", expected[0])
    schedule = Schedule.objects.get(pipeline=pipeline)
    assert (schedule.cron, schedule.timezone, schedule.params, schedule.overlap, schedule.enabled) == (
        "0 0 2 ? * MON-FRI",
        "Europe/Paris",
        {"limit": 500},
        "queue",
        True,
    )
    assert schedule.periodic_task.enabled  # beat's entry, in step
    shot("schedule-created")

    # Edit: a Unix expression, and off for now.
    item.get_by_role("button", name="Edit").click()
    expect(page.locator("#schedule-cron")).to_have_value("0 0 2 ? * MON-FRI")
    page.fill("#schedule-cron", "30 6 * * 0")
    expect(page.locator("#schedule-words")).to_contain_text("At 06:30, only on Sunday (Europe/Paris)")
    expect(page.locator("#schedule-words .badge")).to_have_text("unix")
    page.uncheck("#schedule-enabled")
    page.click("#save-schedule")
    expect(item.locator(".badge")).to_have_text("disabled")
    expect(item).to_contain_text("No fire ahead.")
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.enabled, schedule.params) == ("30 6 * * 0", False, {"limit": 500})
    assert not schedule.periodic_task.enabled
    shot("schedule-edited")

    item.get_by_role("button", name="Delete").click()
    page.locator(".dm-schedule").get_by_role("button", name="Delete").click()
    expect(page.locator(".dm-dialog")).to_contain_text("No schedules yet.")
    assert not Schedule.objects.filter(pipeline=pipeline).exists()
    shot("schedule-deleted")
