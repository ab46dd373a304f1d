"""Schedules fired for real: celery beat (DatabaseScheduler) sends the fire, a real worker
starts the run and executes it. Overlap policies with real runs on the worker."""

from datetime import UTC, timedelta

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
import pytest

from pipelines import schedules
from pipelines.models import Run, Schedule
from pipelines.tasks import fire_schedule, sweep
from tests.engine import workers
from tests.engine.conftest import wait_for_run
from tests.factories import create_pipeline
from tests.scheduling.conftest import nightly_document
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def test_beat_fires_a_new_schedule_through_a_real_worker(engine, processes, alice):
    """No shortcuts: a schedule for every minute, beat started afterwards, the run at the next minute."""
    pipeline = create_pipeline(alice, nightly_document(value="scheduled"))
    schedule = schedules.create_schedule(pipeline, cron="0 * * * * ?", timezone="Asia/Kolkata", params={"n": 7})
    processes.start_beat()

    wait_until(lambda: Run.objects.filter(schedule=schedule).exists(), 75, "beat to fire the schedule")
    run = wait_for_run(Run.objects.get(schedule=schedule))
    assert run.state == "succeeded", run.error
    assert run.trigger == "schedule" and run.params == {"n": 7, "label": "x"}
    schedule.refresh_from_db()
    assert schedule.last_outcome == "started"
    assert schedule.last_fire_at.second == 0 and schedule.last_fire_at == schedule.handled_through
    assert f"Sending due task datamate schedule {schedule.pk}" in processes.beat.output()


def test_after_beat_was_down_only_catch_up_schedules_run_once(engine, processes, alice):
    """Beat was down through a fire an hour ago. On restart it sends it; only catch_up runs it."""
    due = (timezone.now() - timedelta(minutes=61)).astimezone(UTC).replace(second=0, microsecond=0)
    tokyo = due.astimezone(timezone.get_fixed_timezone(9 * 60))  # Asia/Tokyo has no DST
    cron = f"{tokyo.minute} {tokyo.hour} * * *"
    made = {}
    for catch_up in (False, True):
        pipeline = create_pipeline(alice, nightly_document(), name=f"catch_up={catch_up}")
        schedule = schedules.create_schedule(
            pipeline, cron=cron, timezone="Asia/Tokyo", params={"n": 1}, catch_up=catch_up
        )
        # As if made 3 hours ago and beat last ran then.
        three_hours_ago = timezone.now() - timedelta(hours=3)
        Schedule.objects.filter(pk=schedule.pk).update(handled_through=three_hours_ago)
        PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(last_run_at=three_hours_ago)
        made[catch_up] = schedule
    processes.start_beat()

    wait_until(lambda: all(Schedule.objects.get(pk=s.pk).last_outcome for s in made.values()), 30, "beat's two fires")
    caught_up, missed = Schedule.objects.get(pk=made[True].pk), Schedule.objects.get(pk=made[False].pk)
    assert (missed.last_outcome, missed.last_fire_at) == ("missed", due)
    assert not Run.objects.filter(pipeline=missed.pipeline).exists()
    assert (caught_up.last_outcome, caught_up.last_fire_at) == ("started", due)
    assert wait_for_run(Run.objects.get(pipeline=caught_up.pipeline)).state == "succeeded"


@pytest.fixture
def wide_worker(engine, engine_logs):
    """Room for three sleeping runs and the fire tasks next to them."""
    worker = workers.start_worker(engine_logs, name="wide-worker", concurrency=4)
    yield worker
    worker.stop()


def test_overlap_policies_with_real_runs(wide_worker, alice):
    """Two fires a minute apart while the first run (6 s: ample on a busy machine) is still going."""
    first_due = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=3)
    made = {}
    for policy in ("skip", "queue", "allow"):
        pipeline = create_pipeline(alice, nightly_document(sleep=6), name=policy)
        schedule = schedules.create_schedule(pipeline, cron="* * * * *", params={"n": 1}, overlap=policy)
        Schedule.objects.filter(pk=schedule.pk).update(handled_through=first_due - timedelta(hours=1))
        made[policy] = schedule

    def send_fire(due):
        for schedule in made.values():  # what beat sends: the fire task, stamped with beat's clock
            fire_schedule.apply_async(
                kwargs={"schedule_id": schedule.pk, "sent_at": (due + timedelta(seconds=1)).timestamp()}
            )

    send_fire(first_due)
    wait_until(lambda: Run.objects.filter(schedule__in=made.values()).count() == 3, 20, "the first runs")
    send_fire(first_due + timedelta(minutes=1))
    outcomes = lambda: {p: Schedule.objects.get(pk=s.pk).last_fire_at for p, s in made.items()}  # noqa: E731
    wait_until(lambda: set(outcomes().values()) == {first_due + timedelta(minutes=1)}, 20, "the second fires")

    first_runs = {policy: Run.objects.filter(schedule=s).order_by("id").first() for policy, s in made.items()}
    assert all(run.state == "running" for run in first_runs.values())  # still going: the second fire overlapped
    assert Schedule.objects.get(pk=made["skip"].pk).last_outcome == "skipped"
    assert Schedule.objects.get(pk=made["queue"].pk).last_outcome == "queued"
    assert Schedule.objects.get(pk=made["allow"].pk).last_outcome == "started"

    # The periodic sweep (beat sends it every DATAMATE_SWEEP_SECONDS) starts the queued fire
    # once the first run is over.
    wait_until(
        lambda: Run.objects.filter(schedule=made["queue"]).count() == 2,
        30,
        "the queued run",
        every=0.25,
        while_waiting=sweep.delay,
    )
    for policy, expected_runs in (("skip", 1), ("queue", 2), ("allow", 2)):
        runs = list(Run.objects.filter(schedule=made[policy]).order_by("id"))
        assert len(runs) == expected_runs, policy
        for run in runs:
            assert wait_for_run(run).state == "succeeded", (policy, run.error)
    queue_first, queue_second = Run.objects.filter(schedule=made["queue"]).order_by("id")
    assert queue_second.started_at >= queue_first.finished_at  # waited for the active one
    allow_first, allow_second = Run.objects.filter(schedule=made["allow"]).order_by("id")
    assert allow_second.started_at < allow_first.finished_at  # ran in parallel
    assert Schedule.objects.get(pk=made["queue"].pk).pending_fire_at is None
