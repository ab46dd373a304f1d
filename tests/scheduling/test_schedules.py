"""Schedule services: validation, the beat entry kept in sync, next runs, and firing decisions.

Runs started here are never executed (no worker; the test transaction never commits), which
is what lets them stand in for "a run of the pipeline is still active"."""

from datetime import UTC, datetime, timedelta
import json
from zoneinfo import ZoneInfo

from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask
import pytest

from pipelines import schedules, services
from pipelines.engine.runs import ParamsInvalid
from pipelines.models import Run, Schedule
from tests.scheduling.conftest import nightly_document
from tests.scheduling.test_cron import VALID

MINUTE = timedelta(minutes=1)


def minute_floor(moment):
    return moment.replace(second=0, microsecond=0)


def every_minute(pipeline, **fields):
    """A schedule made an hour ago (so recent fire times are not before its creation)."""
    schedule = schedules.create_schedule(pipeline, cron="* * * * *", params={"n": 1}, **fields)
    Schedule.objects.filter(pk=schedule.pk).update(handled_through=timezone.now() - timedelta(hours=1))
    schedule.refresh_from_db()
    return schedule


def fire_at(schedule, due, late=timedelta(seconds=1)):
    """Handle the message beat sends for fire time `due`, `late` after it."""
    outcome = schedules.fire(schedule.pk, sent_at=due + late)
    schedule.refresh_from_db()
    return outcome


# --- writing and the beat entry -------------------------------------------------------


def test_create_writes_the_schedule_and_its_beat_entry(nightly):
    schedule = schedules.create_schedule(
        nightly, cron="0 0 2 * * ?", timezone="Europe/Paris", params={"n": 3}, overlap="queue"
    )

    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "pipelines.tasks.fire_schedule"
    assert json.loads(task.kwargs) == {"schedule_id": schedule.pk}
    assert task.enabled
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "0",
        "2",
        "*",
        "*",
        "*",
    )
    assert str(crontab.timezone) == "Europe/Paris"
    # What beat builds from the row fires at 02:00 Paris time.
    beat_schedule = crontab.schedule
    assert beat_schedule.tz == ZoneInfo("Europe/Paris") and beat_schedule.hour == {2}


def test_invalid_values_are_all_reported_and_nothing_is_written(nightly):
    with pytest.raises(ParamsInvalid) as refused:
        schedules.create_schedule(
            nightly,
            cron="0 0 ? * 6L",
            timezone="Mars/Olympus",
            params={"n": "three", "extra": 1},
            overlap="sometimes",
            version=9,
            start_at=datetime(2026, 2, 1, tzinfo=UTC),
            end_at=datetime(2026, 1, 1, tzinfo=UTC),
        )

    fields = [error["field"] for error in refused.value.errors]
    assert fields == ["cron", "timezone", "overlap", "end_at", "version"]
    messages = {error["field"]: error["message"] for error in refused.value.errors}
    assert messages["cron"].startswith("day-of-week `6L`: `L` (the last day) cannot be expressed")
    assert "no version 9" in messages["version"]
    assert not Schedule.objects.exists() and not PeriodicTask.objects.exists()


def test_parameters_are_checked_against_the_pipeline(nightly):
    with pytest.raises(ParamsInvalid) as refused:
        schedules.create_schedule(nightly, cron="0 2 * * *", params={"n": "three", "extra": 1})
    assert refused.value.errors == [
        {"field": "params.extra", "message": "is not a parameter of this pipeline"},
        {"field": "params.n", "message": "must be an integer"},
    ]
    with pytest.raises(ParamsInvalid) as missing:
        schedules.create_schedule(nightly, cron="0 2 * * *")
    assert missing.value.errors == [{"field": "params.n", "message": "is required"}]


def test_a_pinned_version_checks_parameters_against_that_version(alice, nightly):
    renamed = nightly_document()
    renamed["parameters"] = [{"name": "count", "type": "integer", "required": True}]
    services.save_graph(nightly, renamed, author=alice)

    pinned = schedules.create_schedule(nightly, cron="0 2 * * *", params={"n": 1}, version=1)
    assert pinned.version == 1
    with pytest.raises(ParamsInvalid) as refused:
        schedules.create_schedule(nightly, cron="0 2 * * *", params={"n": 1})
    assert [error["field"] for error in refused.value.errors] == ["params.n", "params.count"]


def test_changes_follow_to_the_beat_entry(nightly):
    schedule = schedules.create_schedule(nightly, cron="0 2 * * *", params={"n": 1})
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=timezone.now())

    schedules.update_schedule(schedule, cron="0 0 6 ? * MON-FRI", timezone="Asia/Tokyo")

    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.day_of_week, str(task.crontab.timezone)) == ("6", "1-5", "Asia/Tokyo")
    assert task.last_run_at is None  # beat counts the new expression from now, not from an old fire
    assert CrontabSchedule.objects.count() == 1  # the schedule's own crontab row, updated in place

    schedules.update_schedule(schedule, enabled=False, end_at=datetime(2030, 1, 1, tzinfo=UTC))
    task.refresh_from_db()
    assert not task.enabled and task.expires == datetime(2030, 1, 1, tzinfo=UTC)


def test_a_refused_change_leaves_schedule_and_beat_entry_as_they_were(nightly):
    schedule = schedules.create_schedule(nightly, cron="0 2 * * *", params={"n": 1})
    with pytest.raises(ParamsInvalid):
        schedules.update_schedule(schedule, cron="0 0 2 L * ?")
    schedule.refresh_from_db()
    assert schedule.cron == "0 2 * * *"
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).crontab.hour == "2"


def test_deleting_a_schedule_or_its_pipeline_removes_the_beat_entry(alice, nightly):
    first = schedules.create_schedule(nightly, cron="0 2 * * *", params={"n": 1})
    schedules.create_schedule(nightly, cron="0 3 * * *", params={"n": 1})
    assert PeriodicTask.objects.count() == 2

    schedules.delete_schedule(first)
    assert PeriodicTask.objects.count() == 1 and CrontabSchedule.objects.count() == 1

    nightly.delete()
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()


# --- words and next runs -------------------------------------------------------------


def test_preview_describes_and_lists_the_next_fire_times():
    shown = schedules.preview("0 0 2 ? * MON-FRI", "Europe/Paris", now=datetime(2026, 3, 26, 12, tzinfo=UTC))
    assert shown["description"] == "At 02:00, Monday through Friday (Europe/Paris)"
    assert shown["dialect"] == "quartz"
    assert shown["crontab"]["day_of_week"] == "1-5"
    assert shown["next_runs"] == [
        "2026-03-27T02:00:00+01:00",
        "2026-03-30T02:00:00+02:00",  # after the change to summer time
        "2026-03-31T02:00:00+02:00",
        "2026-04-01T02:00:00+02:00",
        "2026-04-02T02:00:00+02:00",
    ]


def test_next_runs_respect_start_end_and_enabled(nightly):
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    schedule = schedules.create_schedule(
        nightly,
        cron="0 2 * * *",
        params={"n": 1},
        start_at=datetime(2026, 5, 10, tzinfo=UTC),
        end_at=datetime(2026, 5, 12, 12, tzinfo=UTC),
    )
    assert [moment.isoformat() for moment in schedules.next_runs(schedule, now=now)] == [
        "2026-05-10T02:00:00+00:00",
        "2026-05-11T02:00:00+00:00",
        "2026-05-12T02:00:00+00:00",
    ]
    schedule = schedules.update_schedule(schedule, enabled=False)
    assert schedules.next_runs(schedule, now=now) == []


# --- firing --------------------------------------------------------------------------


def test_a_fire_starts_a_run_that_records_its_schedule(nightly):
    schedule = every_minute(nightly)
    due = minute_floor(timezone.now()) - MINUTE

    assert fire_at(schedule, due) == "started"

    run = Run.objects.get(pipeline=nightly)
    assert run.trigger == Run.Trigger.SCHEDULE and run.schedule == schedule
    assert run.params == {"n": 1, "label": "x"}
    assert (schedule.last_fire_at, schedule.last_outcome) == (due, "started")
    assert schedule.last_message == f"run {run.pk} for {due.isoformat()}"


def test_the_same_fire_twice_starts_one_run(nightly):
    schedule = every_minute(nightly, overlap="allow")
    due = minute_floor(timezone.now()) - MINUTE
    assert fire_at(schedule, due) == "started"
    assert fire_at(schedule, due, late=timedelta(seconds=5)) == "ignored"  # a redelivered message
    assert Run.objects.filter(pipeline=nightly).count() == 1


def test_fires_before_the_schedule_existed_are_ignored(nightly):
    schedule = schedules.create_schedule(nightly, cron="* * * * *", params={"n": 1})
    assert fire_at(schedule, minute_floor(schedule.created_at)) == "ignored"
    assert not Run.objects.exists()


def daily_at(pipeline, due, **fields):
    """A schedule (made an hour before `due`) that fires every day at `due`'s time of day, UTC."""
    schedule = schedules.create_schedule(pipeline, cron=f"{due.minute} {due.hour} * * *", params={"n": 1}, **fields)
    Schedule.objects.filter(pk=schedule.pk).update(handled_through=due - timedelta(hours=1))
    schedule.refresh_from_db()
    return schedule


def test_a_missed_fire_is_not_replayed_without_catch_up(nightly):
    due = minute_floor(timezone.now()) - 10 * MINUTE
    schedule = daily_at(nightly, due)

    assert fire_at(schedule, due, late=timedelta(minutes=3)) == "missed"  # beat was down at `due`
    assert not Run.objects.exists()
    assert (schedule.last_fire_at, schedule.last_outcome) == (due, "missed")
    assert schedule.last_message == "sent 3 min after its time (beat was not running); catch_up is off"


def test_catch_up_runs_the_latest_missed_fire_once(nightly):
    due = minute_floor(timezone.now()) - 10 * MINUTE
    schedule = daily_at(nightly, due, catch_up=True)

    # Beat comes back 3 minutes late and sends one message: the latest missed fire runs.
    assert fire_at(schedule, due, late=timedelta(minutes=3)) == "started"
    assert Run.objects.get().schedule == schedule
    # A beat that lost its own record of that send sends it again: nothing more runs.
    assert fire_at(schedule, due, late=timedelta(minutes=4)) == "ignored"
    assert Run.objects.count() == 1


def test_a_message_that_waited_behind_busy_workers_is_on_time(nightly):
    """Lateness counts from when beat sent the message, not from when a worker took it: a
    fire handled 30 minutes after its time, but sent on time, starts its run."""
    due = minute_floor(timezone.now()) - 30 * MINUTE
    schedule = daily_at(nightly, due)
    assert fire_at(schedule, due, late=timedelta(seconds=1)) == "started"


def test_skip_policy(nightly):
    schedule = every_minute(nightly, overlap="skip")
    due = minute_floor(timezone.now()) - 3 * MINUTE
    assert fire_at(schedule, due) == "started"
    active = Run.objects.get()

    assert fire_at(schedule, due + MINUTE) == "skipped"
    assert schedule.last_message == f"run {active.pk} of the pipeline is still active"
    assert Run.objects.count() == 1


def test_queue_policy_holds_one_fire_until_the_active_run_ends(nightly):
    schedule = every_minute(nightly, overlap="queue")
    due = minute_floor(timezone.now()) - 3 * MINUTE
    assert fire_at(schedule, due) == "started"
    active = Run.objects.get()

    assert fire_at(schedule, due + MINUTE) == "queued"
    assert schedule.pending_fire_at == due + MINUTE
    assert fire_at(schedule, due + 2 * MINUTE) == "skipped"  # at most one fire waits
    assert schedules.start_pending_fires() == 0  # still active

    Run.objects.filter(pk=active.pk).update(state="succeeded", finished_at=timezone.now())
    assert schedules.start_pending_fires() == 1
    schedule.refresh_from_db()
    queued = Run.objects.exclude(pk=active.pk).get()
    assert queued.schedule == schedule and queued.trigger == "schedule"
    assert schedule.pending_fire_at is None and schedule.last_outcome == "started"
    assert schedules.start_pending_fires() == 0


def test_allow_policy_runs_in_parallel(nightly):
    schedule = every_minute(nightly, overlap="allow")
    due = minute_floor(timezone.now()) - 3 * MINUTE
    assert [fire_at(schedule, due), fire_at(schedule, due + MINUTE)] == ["started", "started"]
    assert Run.objects.filter(state="running", schedule=schedule).count() == 2


def test_overlap_counts_runs_from_any_trigger(nightly):
    from pipelines.engine.runs import start_run

    start_run(nightly, {"n": 5})
    schedule = every_minute(nightly, overlap="skip")
    assert fire_at(schedule, minute_floor(timezone.now()) - MINUTE) == "skipped"


def test_a_fire_whose_run_cannot_start_is_recorded(alice, nightly):
    schedule = every_minute(nightly)
    changed = nightly_document()
    changed["parameters"] = [{"name": "n", "type": "string", "required": True}]
    services.save_graph(nightly, changed, author=alice)

    assert fire_at(schedule, minute_floor(timezone.now()) - MINUTE) == "failed"
    assert "params.n: must be a string" in schedule.last_message
    assert not Run.objects.exists()


def test_fires_outside_start_and_end_or_when_disabled_are_ignored(nightly):
    now = minute_floor(timezone.now())
    schedule = every_minute(nightly, start_at=now + 10 * MINUTE)
    assert fire_at(schedule, now - MINUTE) == "ignored"
    schedule = schedules.update_schedule(schedule, start_at=None, end_at=now - 5 * MINUTE)
    assert fire_at(schedule, now - MINUTE) == "ignored"
    schedule = schedules.update_schedule(schedule, end_at=None, enabled=False)
    assert fire_at(schedule, now - MINUTE) == "ignored"
    assert not Run.objects.exists()


@pytest.mark.parametrize("expression", [expression for expression, _ in VALID])
def test_every_accepted_expression_reads_in_words_and_has_fire_times(expression):
    shown = schedules.preview(expression, "Europe/Berlin", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert shown["description"].endswith("(Europe/Berlin)") and len(shown["description"]) > 20
    assert len(shown["next_runs"]) == 5
