"""Schedules: create, change, delete, describe, preview, and fire.

Every write goes through here (API, admin, tests). A schedule is one `Schedule` row plus a
django-celery-beat `PeriodicTask` with its own `CrontabSchedule` in the schedule's time
zone, written in the same transaction, so beat (DatabaseScheduler) picks a change up within
seconds and admin shows it. Beat sends `pipelines.tasks.fire_schedule`, which calls `fire`.

Firing, in order:
1. The fire time is the latest cron time at or before the moment beat sent the message.
   Fire times at or before `Schedule.handled_through` are done: a duplicate message, or beat
   re-sending after a restart, never starts a second run.
2. Beat sends a missed fire once when it starts again. A message sent more than
   MISFIRE_GRACE after its fire time is such a fire: it starts a run only with `catch_up`
   (and so only the latest missed fire runs); otherwise it is recorded as missed.
3. Overlap, decided under a lock on the pipeline row: `skip` drops the fire while a run of
   the pipeline is active, `queue` holds one fire (`pending_fire_at`; later fires are
   dropped while one is held) that `start_pending_fires` (the sweep task) starts once no
   run is active, `allow` starts regardless.
4. The run starts through `start_run(..., trigger="schedule", schedule=...)`, like every
   other trigger. If it cannot start (parameters no longer fit, invalid graph, missing
   version), the fire is recorded as failed with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta
import functools
import json
import logging
from typing import Any
import zoneinfo

from cron_descriptor import ExpressionDescriptor, Options
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from pipelines import cron, services
from pipelines.engine.runs import ParamsInvalid, resolve_params, start_run
from pipelines.engine.states import RunState
from pipelines.graph_validation import GraphInvalid
from pipelines.models import Pipeline, Run, Schedule

logger = logging.getLogger(__name__)

FIRE_TASK = "pipelines.tasks.fire_schedule"
#: How many fire times the API and admin show.
NEXT_RUNS = 5
#: A fire sent later than this after its time was missed (beat was not running). Beat sends
#: a due fire within a second or two; 60 s is Quartz's default misfire threshold.
MISFIRE_GRACE = timedelta(seconds=60)
#: Clocks of beat and of this process may differ by a little.
CLOCK_TOLERANCE = timedelta(seconds=2)

EDITABLE_FIELDS = ("cron", "timezone", "params", "overlap", "catch_up", "enabled", "start_at", "end_at", "version")
DEFAULTS: dict[str, Any] = {
    "timezone": "UTC",
    "params": None,
    "overlap": Schedule.Overlap.SKIP,
    "catch_up": False,
    "enabled": True,
    "start_at": None,
    "end_at": None,
    "version": None,
}


# --- reading an expression ----------------------------------------------------------


@functools.cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone_error(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "must be an IANA time zone name, e.g. Europe/Paris"
    if name not in _time_zone_names():
        return f"{name!r} is not an IANA time zone name (e.g. UTC, Europe/Paris, America/New_York)"
    return None


def check_expression(cron_text: Any, time_zone: Any) -> tuple[cron.Crontab, zoneinfo.ZoneInfo]:
    """The crontab and zone of an expression. Raises ParamsInvalid naming `cron` and/or `timezone`."""
    errors, crontab = [], None
    try:
        crontab = cron.parse(cron_text)
    except cron.CronInvalid as exc:
        errors.append({"field": "cron", "message": str(exc)})
    problem = time_zone_error(time_zone)
    if problem:
        errors.append({"field": "timezone", "message": problem})
    if errors:
        raise ParamsInvalid(errors)
    return crontab, zoneinfo.ZoneInfo(time_zone)


def describe(crontab: cron.Crontab, time_zone: str) -> str:
    """The schedule in words, e.g. "At 02:00, Monday through Friday (Europe/Paris)"."""
    options = Options()
    options.locale_code = "en_US"  # not the server's locale
    options.use_24hour_time_format = True
    options.day_of_week_start_index_zero = True  # the translated expression numbers Sunday 0
    # Words for what beat runs (the translation), so Quartz and Unix read the same.
    return f"{ExpressionDescriptor(crontab.unix(), options).get_description()} ({time_zone})"


def upcoming(
    crontab: cron.Crontab,
    zone: zoneinfo.ZoneInfo,
    *,
    now: datetime | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    count: int = NEXT_RUNS,
) -> list[datetime]:
    """The next `count` fire times after `now`, within [start_at, end_at], in `zone`."""
    after = now or timezone.now()
    if start_at and start_at > after:
        after = start_at - timedelta(microseconds=1)
    times = []
    for moment in cron.fire_times(crontab, zone, after):
        if (end_at and moment > end_at) or len(times) == count:
            break
        times.append(moment)
    return times


def preview(cron_text: Any, time_zone: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """What a schedule with this expression would do, without saving anything."""
    crontab, zone = check_expression(cron_text, time_zone)
    return {
        "cron": cron_text,
        "timezone": time_zone,
        "dialect": crontab.dialect,
        "crontab": crontab.fields(),
        "description": describe(crontab, time_zone),
        "next_runs": [moment.isoformat() for moment in upcoming(crontab, zone, now=now)],
    }


def next_runs(schedule: Schedule, *, now: datetime | None = None, count: int = NEXT_RUNS) -> list[datetime]:
    """When beat will fire this schedule next; none while it is disabled."""
    if not schedule.enabled:
        return []
    crontab, zone = cron.parse(schedule.cron), zoneinfo.ZoneInfo(schedule.timezone)
    return upcoming(crontab, zone, now=now, start_at=schedule.start_at, end_at=schedule.end_at, count=count)


def summary(schedule: Schedule) -> dict[str, Any]:
    """The derived fields the API and admin show next to a schedule's own."""
    crontab = cron.parse(schedule.cron)
    return {
        "dialect": crontab.dialect,
        "crontab": crontab.fields(),
        "description": describe(crontab, schedule.timezone),
        "next_runs": [moment.isoformat() for moment in next_runs(schedule)],
    }


# --- writing ------------------------------------------------------------------------


def check_schedule(pipeline: Pipeline, values: dict[str, Any]) -> None:
    """Every problem with a schedule's values, each naming its field. Raises ParamsInvalid."""
    errors: list[dict[str, str]] = []
    try:
        check_expression(values["cron"], values["timezone"])
    except ParamsInvalid as exc:
        errors += exc.errors
    if values["overlap"] not in Schedule.Overlap.values:
        errors.append({"field": "overlap", "message": f"must be one of {', '.join(Schedule.Overlap.values)}"})
    for flag in ("catch_up", "enabled"):
        if not isinstance(values[flag], bool):
            errors.append({"field": flag, "message": "must be true or false"})
    for moment in ("start_at", "end_at"):
        if values[moment] is not None and (not isinstance(values[moment], datetime) or values[moment].tzinfo is None):
            errors.append({"field": moment, "message": "must be a date-time with a time zone"})
    start_at, end_at = values["start_at"], values["end_at"]
    if isinstance(start_at, datetime) and isinstance(end_at, datetime) and end_at <= start_at:
        errors.append({"field": "end_at", "message": "must be after start_at"})
    definitions = pipeline.parameters
    version = values["version"]
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            errors.append({"field": "version", "message": "must be a version number, or null for the latest"})
            definitions = None
        else:
            try:
                definitions = services.version_document(pipeline, version)["parameters"]
            except services.NotFound:
                errors.append({"field": "version", "message": f"this pipeline has no version {version}"})
                definitions = None
    if definitions is not None:
        try:
            resolve_params(definitions, values["params"], pipeline.owner_id)
        except ParamsInvalid as exc:
            errors += exc.errors
    if errors:
        raise ParamsInvalid(errors)


def create_schedule(pipeline: Pipeline, **fields: Any) -> Schedule:
    """A new schedule and its beat entry, or ParamsInvalid and nothing written."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not schedule fields: {sorted(unknown)}")
    if "cron" not in fields:
        raise ParamsInvalid([{"field": "cron", "message": "is required"}])
    values = {**DEFAULTS, **fields}
    check_schedule(pipeline, values)
    values["params"] = values["params"] or {}
    with transaction.atomic():
        # Nothing before its creation counts as missed.
        schedule = Schedule.objects.create(pipeline=pipeline, handled_through=timezone.now(), **values)
        _sync_beat_entry(schedule, restart=True)
    return schedule


def update_schedule(schedule: Schedule, **changes: Any) -> Schedule:
    """Change some fields; the beat entry follows in the same transaction."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not schedule fields: {sorted(unknown)}")
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().select_related("pipeline").get(pk=schedule.pk)
        values = {name: getattr(schedule, name) for name in EDITABLE_FIELDS}
        values.update(changes)
        check_schedule(schedule.pipeline, values)
        values["params"] = values["params"] or {}
        # A new expression or zone, or turning it back on, starts afresh: the fires it would
        # have had before are not missed fires to catch up on.
        restart = (
            values["cron"] != schedule.cron
            or values["timezone"] != schedule.timezone
            or (values["enabled"] and not schedule.enabled)
        )
        for name, value in values.items():
            setattr(schedule, name, value)
        if restart:
            schedule.handled_through = max(schedule.handled_through, timezone.now())
        if not schedule.enabled:
            schedule.pending_fire_at = None
        schedule.save()
        _sync_beat_entry(schedule, restart=restart)
    return schedule


def delete_schedule(schedule: Schedule) -> None:
    """The beat entry goes with it (see the post_delete receiver in models.py)."""
    schedule.delete()


def _sync_beat_entry(schedule: Schedule, *, restart: bool) -> None:
    """Write the schedule's PeriodicTask and CrontabSchedule to match it."""
    fields = cron.parse(schedule.cron).fields()
    task = PeriodicTask.objects.select_related("crontab").filter(pk=schedule.periodic_task_id).first()
    crontab = task.crontab if task is not None and task.crontab is not None else CrontabSchedule()
    for name, value in fields.items():
        setattr(crontab, name, value)
    crontab.timezone = zoneinfo.ZoneInfo(schedule.timezone)
    crontab.save()
    if task is None:
        task = PeriodicTask(task=FIRE_TASK)
    task.name = f"datamate schedule {schedule.pk}"
    task.crontab = crontab
    task.kwargs = json.dumps({"schedule_id": schedule.pk})
    task.enabled = schedule.enabled
    task.start_time = schedule.start_at
    task.expires = schedule.end_at
    task.description = f"{schedule.pipeline.name}: {schedule.cron} ({schedule.timezone})"
    if restart:
        # Beat then counts from the task's change time, not from a fire of the old expression.
        task.last_run_at = None
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        Schedule.objects.filter(pk=schedule.pk).update(periodic_task=task)


# --- firing -------------------------------------------------------------------------


def fire(schedule_id: int, *, sent_at: datetime | None = None) -> str:
    """Handle one message from beat, sent at `sent_at` (beat's clock). Returns what happened:
    a `Schedule.Outcome`, or "ignored" (gone, disabled, outside its dates, already handled)."""
    sent_at = sent_at or timezone.now()
    schedule = Schedule.objects.select_related("pipeline").filter(pk=schedule_id).first()
    if schedule is None or not schedule.enabled:
        return "ignored"
    crontab, zone = cron.parse(schedule.cron), zoneinfo.ZoneInfo(schedule.timezone)
    due = cron.previous_fire_time(crontab, zone, sent_at + CLOCK_TOLERANCE)
    if due is None or (schedule.start_at and due < schedule.start_at) or (schedule.end_at and due > schedule.end_at):
        return "ignored"
    with transaction.atomic():
        if not Schedule.objects.filter(pk=schedule.pk, handled_through__lt=due).update(handled_through=due):
            return "ignored"
        late = sent_at - due
        if late > MISFIRE_GRACE and not schedule.catch_up:
            outcome = Schedule.Outcome.MISSED
            message = f"sent {_duration(late)} after its time (beat was not running); catch_up is off"
        else:
            outcome, message = _start_or_hold(schedule, due)
        Schedule.objects.filter(pk=schedule.pk).update(last_fire_at=due, last_outcome=outcome, last_message=message)
    logger.info("schedule %s fire of %s: %s %s", schedule.pk, due.isoformat(), outcome, message)
    return outcome


def start_pending_fires() -> int:
    """Start the fires that the `queue` policy holds, once their pipeline has no active run.
    Run by the periodic sweep, so it works from the database alone. Returns how many started."""
    started = 0
    for schedule in Schedule.objects.filter(pending_fire_at__isnull=False, enabled=True).select_related("pipeline"):
        with transaction.atomic():
            _lock(schedule.pipeline)
            if _active_run(schedule.pipeline) is not None:
                continue
            held = schedule.pending_fire_at
            if not Schedule.objects.filter(pk=schedule.pk, pending_fire_at=held).update(pending_fire_at=None):
                continue  # another sweep started it
            outcome, message = _start(schedule, held)
            Schedule.objects.filter(pk=schedule.pk).update(last_outcome=outcome, last_message=message)
        started += outcome == Schedule.Outcome.STARTED
    return started


def _start_or_hold(schedule: Schedule, due: datetime) -> tuple[str, str]:
    _lock(schedule.pipeline)
    active = _active_run(schedule.pipeline)
    if active is not None and schedule.overlap == Schedule.Overlap.SKIP:
        return Schedule.Outcome.SKIPPED, f"run {active.pk} of the pipeline is still active"
    if active is not None and schedule.overlap == Schedule.Overlap.QUEUE:
        if Schedule.objects.filter(pk=schedule.pk, pending_fire_at__isnull=True).update(pending_fire_at=due):
            return Schedule.Outcome.QUEUED, f"starts when run {active.pk} ends"
        return Schedule.Outcome.SKIPPED, f"run {active.pk} is still active and a fire is already queued"
    return _start(schedule, due)


def _start(schedule: Schedule, due: datetime) -> tuple[str, str]:
    try:
        with transaction.atomic():
            run = start_run(
                schedule.pipeline,
                schedule.params,
                version=schedule.version,
                trigger=Run.Trigger.SCHEDULE,
                schedule=schedule,
            )
    except (ParamsInvalid, GraphInvalid, services.NotFound) as exc:
        return Schedule.Outcome.FAILED, f"the run of {due.isoformat()} could not start: {exc}"
    return Schedule.Outcome.STARTED, f"run {run.pk} for {due.isoformat()}"


def _lock(pipeline: Pipeline) -> None:
    """Serialises overlap decisions per pipeline (two schedules of one pipeline firing together)."""
    Pipeline.objects.select_for_update().filter(pk=pipeline.pk).values_list("pk", flat=True).first()


def _active_run(pipeline: Pipeline) -> Run | None:
    return Run.objects.filter(pipeline_id=pipeline.pk, state__in=RunState.ACTIVE).order_by("id").first()


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
