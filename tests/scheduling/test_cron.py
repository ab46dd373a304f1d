"""Parsing and translation of Quartz and Unix cron, and fire times across DST changes."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab as celery_crontab
from django_celery_beat.tzcrontab import TzAwareCrontab
import pytest

from pipelines import cron

# expression → the crontab beat runs ("minute hour day_of_month month_of_year day_of_week",
# day-of-week 0 = Sunday), or the start of the refusal message.
VALID = [
    # Quartz
    ("0 0 2 * * ?", "0 2 * * *"),
    ("0 0 2 ? * *", "0 2 * * *"),
    ("0 0 2 * * ? *", "0 2 * * *"),
    ("0 0 2 * * *", "0 2 * * *"),
    ("0 */15 * * * ?", "*/15 * * * *"),
    ("0 0/15 * * * ?", "*/15 * * * *"),
    ("0 5/15 * * * ?", "5-50/15 * * * *"),
    ("0 0 12 ? * MON-FRI", "0 12 * * 1-5"),
    ("0 0 12 ? * 2-6", "0 12 * * 1-5"),
    ("0 0 12 ? * 1", "0 12 * * 0"),
    ("0 0 12 ? * 7", "0 12 * * 6"),
    ("0 0 12 ? * SUN,SAT", "0 12 * * 0,6"),
    ("0 0 12 ? * 1,7", "0 12 * * 0,6"),
    ("0 0 12 ? * FRI-MON", "0 12 * * 0,1,5,6"),
    ("0 0 12 ? * */2", "0 12 * * */2"),
    ("0 0 12 ? * 2/2", "0 12 * * 1-5/2"),  # MON, WED, FRI
    ("0 0 22-2 * * ?", "0 0-2,22,23 * * *"),
    ("0 30 9 1,15 * ?", "30 9 1,15 * *"),
    ("0 0 0 1 JAN-MAR ?", "0 0 1 1-3 *"),
    ("0 0 0 1 1/3 ?", "0 0 1 */3 *"),
    ("0 0 8 ? jan,jul mon", "0 8 * 1,7 1"),
    ("0 0 0 29 2 ?", "0 0 29 2 *"),
    ("0 0,30 8-17 ? * MON-FRI", "0,30 8-17 * * 1-5"),
    ("00 0 2 * * ?", "0 2 * * *"),
    # Unix
    ("0 2 * * *", "0 2 * * *"),
    ("*/5 * * * *", "*/5 * * * *"),
    ("0 9-17 * * 1-5", "0 9-17 * * 1-5"),
    ("0 9-17 * * MON-FRI", "0 9-17 * * 1-5"),
    ("0 0 * * 0", "0 0 * * 0"),
    ("0 0 * * 7", "0 0 * * 0"),
    ("0 0 * * 5-7", "0 0 * * 0,5,6"),
    ("0 0 * * 0-7", "0 0 * * *"),
    ("0 0 * * SUN", "0 0 * * 0"),
    ("15 14 1 * *", "15 14 1 * *"),
    ("0 22 * * 1-5", "0 22 * * 1-5"),
    ("23 0-20/2 * * *", "23 0-20/2 * * *"),
    ("5,10-12,30 * * * *", "5,10-12,30 * * * *"),
    ("0 0 1 */2 *", "0 0 1 */2 *"),
    ("0 0 */2 * MON", "0 0 */2 * 1"),
    ("0 12 ? * 3", "0 12 * * 3"),
    ("0 0 1 DEC *", "0 0 1 12 *"),
    ("@daily", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    ("@weekly", "0 0 * * 0"),
    ("  0   2 * * *  ", "0 2 * * *"),
]

REFUSED = [
    # Celery's crontab cannot express these
    ("30 0 2 * * ?", "second `30`: Celery's crontab runs on whole minutes"),
    ("* 0 2 * * ?", "second `*`: Celery's crontab runs on whole minutes"),
    ("0/10 * * * * ?", "second `0/10`: Celery's crontab runs on whole minutes"),
    ("0 0 2 * * ? 2026", "year `2026`: Celery's crontab has no year field"),
    ("0 0 2 * * ? 2026-2030", "year `2026-2030`"),
    ("0 0 0 L * ?", "day-of-month `L`: `L` (the last day)"),
    ("0 0 0 L-3 * ?", "day-of-month `L-3`: `L` (the last day)"),
    ("0 0 0 ? * 6L", "day-of-week `6L`: `L` (the last day)"),
    ("0 0 0 15W * ?", "day-of-month `15W`: `W` (the nearest weekday)"),
    ("0 0 0 LW * ?", "day-of-month `LW`: `W` (the nearest weekday)"),
    ("0 0 0 ? * 6#3", "day-of-week `6#3`: `#` (the n-th weekday of the month)"),
    ("0 0 0 ? * MON#1", "day-of-week `MON#1`: `#`"),
    ("0 0 L * *", "day-of-month `L`: `L` (the last day)"),
    # Day fields whose meaning Celery's crontab would change
    ("0 0 1 * MON", "day-of-week `MON`: with a day-of-month (`1`) Unix cron runs on days that match either"),
    ("0 0 0 1 * MON", "day-of-week `MON`: Quartz needs `?`"),
    # Malformed
    ("", "is empty"),
    ("0 2 * *", "has 4 fields; expected 5"),
    ("0 0 0 2 * * ? *", "has 8 fields"),
    ("60 * * * *", "minute `60`: 60 is outside 0-59"),
    ("0 24 * * *", "hour `24`: 24 is outside 0-23"),
    ("0 0 0 * * 8", "day-of-week `8`: 8 is outside 1-7"),
    ("0 0 0 ? * 0", "day-of-week `0`: 0 is outside 1-7"),
    ("0 0 * * 8", "day-of-week `8`: 8 is outside 0-7"),
    ("0 0 32 * *", "day-of-month `32`: 32 is outside 1-31"),
    ("0 0 0 * 13 ?", "month `13`: 13 is outside 1-12"),
    ("0 0 * JUX *", "month `JUX`: `JUX` is not a number or a name"),
    ("*/0 * * * *", "minute `*/0`: the step after `/` must be a positive number"),
    ("*/61 * * * *", "minute `*/61`: the step 61 is larger than the minute range"),
    ("0 0 5-2 * *", "day-of-month `5-2`: the range 5-2 starts after it ends"),
    ("0 ? * * *", "hour `?`: `?` is only allowed in day-of-month and day-of-week"),
    ("0 0 31 2 *", "day-of-month `31`: there is no such day in month `2`"),
    ("0 0 0 30,31 FEB ?", "day-of-month `30,31`: there is no such day in month `FEB`"),
    ("@reboot", "`@reboot` is not a known macro"),
    ("0 0 1,,2 * *", "day-of-month `1,,2`"),
]


@pytest.mark.parametrize(("expression", "expected"), VALID)
def test_translation(expression, expected):
    crontab = cron.parse(expression)

    assert crontab.unix() == expected
    assert crontab.dialect == ("quartz" if len(expression.split()) in (6, 7) else "unix")
    # Celery reads the fields back as exactly the values we meant.
    fields = crontab.fields()
    parsed = celery_crontab(**fields)
    assert parsed.minute == set(crontab.minute)
    assert parsed.hour == set(crontab.hour)
    assert parsed.day_of_month == set(crontab.day_of_month)
    assert parsed.month_of_year == set(crontab.month_of_year)
    assert parsed.day_of_week == set(crontab.day_of_week)


@pytest.mark.parametrize(("expression", "message"), REFUSED)
def test_refusal_names_the_field_and_says_why(expression, message):
    with pytest.raises(cron.CronInvalid) as refused:
        cron.parse(expression)
    assert str(refused.value).startswith(message), str(refused.value)


def test_the_table_is_large_enough():
    assert len(VALID) + len(REFUSED) >= 40
    assert sum(len(e.split()) in (6, 7) for e, _ in VALID + REFUSED) >= 20  # Quartz
    assert sum(len(e.split()) == 5 for e, _ in VALID + REFUSED) >= 20  # Unix


def test_quartz_and_unix_day_numbers_mean_the_same_days():
    for quartz, unix in [("1", "0"), ("2", "1"), ("6", "5"), ("7", "6"), ("2-6", "1-5"), ("1,7", "0,6")]:
        assert cron.parse(f"0 0 12 ? * {quartz}").day_of_week == cron.parse(f"0 12 * * {unix}").day_of_week


# --- fire times ----------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def local(zone, *parts, fold=0):
    return datetime(*parts, tzinfo=zone, fold=fold)


def fires(expression, zone, after, count):
    return [moment.isoformat() for moment in cron.next_fire_times(cron.parse(expression), zone, after, count)]


def test_daily_fire_times_in_a_time_zone():
    after = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert fires("0 0 2 * * ?", BERLIN, after, 3) == [
        "2026-06-02T02:00:00+02:00",
        "2026-06-03T02:00:00+02:00",
        "2026-06-04T02:00:00+02:00",
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Spring forward, New York (02:00 → 03:00 on 8 March 2026): 02:30 does not exist that day.
        (
            "30 2 * * *",
            NEW_YORK,
            local(NEW_YORK, 2026, 3, 6, 12),
            ["2026-03-07T02:30:00-05:00", "2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        # Fall back, New York (02:00 → 01:00 on 1 November 2026): 01:30 happens twice, fires once.
        (
            "0 30 1 * * ?",
            NEW_YORK,
            local(NEW_YORK, 2026, 10, 30, 12),
            ["2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        # Every 30 minutes through the New York fall-back night: the repeated hour fires once.
        (
            "*/30 * * * *",
            NEW_YORK,
            local(NEW_YORK, 2026, 11, 1, 0, 15),
            [
                "2026-11-01T00:30:00-04:00",
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T02:30:00-05:00",
            ],
        ),
        # Every 30 minutes through the Berlin spring-forward night (02:00 → 03:00, 29 March 2026).
        (
            "0 0/30 * * * ?",
            BERLIN,
            local(BERLIN, 2026, 3, 29, 0, 45),
            [
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T01:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:30:00+02:00",
            ],
        ),
        # Daily at 02:00 in Berlin across spring forward: the skipped 02:00 fires at 03:00.
        (
            "0 2 * * *",
            BERLIN,
            local(BERLIN, 2026, 3, 27, 12),
            ["2026-03-28T02:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"],
        ),
        # Daily at 02:30 in Berlin across fall back (03:00 → 02:00, 25 October 2026): once, at the first.
        (
            "30 2 * * *",
            BERLIN,
            local(BERLIN, 2026, 10, 24, 12),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        # Weekly, Quartz day 1 = Sunday, in New York across spring forward.
        (
            "0 0 9 ? * 1",
            NEW_YORK,
            local(NEW_YORK, 2026, 3, 1, 12),
            ["2026-03-08T09:00:00-04:00", "2026-03-15T09:00:00-04:00"],
        ),
    ],
)
def test_fire_times_across_daylight_saving_changes(expression, zone, after, expected):
    assert fires(expression, zone, after, len(expected)) == expected


def beat_fire_times(expression, zone, start, count):
    """What celery beat does with the crontab django-celery-beat builds: tick a fake clock."""
    clock = [start]

    class Clocked(TzAwareCrontab):
        def nowfunc(self):
            return clock[0].astimezone(self.tz)

    schedule = Clocked(**cron.parse(expression).fields(), tz=zone)
    schedule.nowfun = schedule.nowfunc
    last, fired = start, []
    while len(fired) < count:
        due, next_check = schedule.is_due(last)
        if due:
            fired.append(clock[0].astimezone(zone).isoformat())
            last = clock[0]
        clock[0] += timedelta(seconds=max(1.0, min(next_check, 3600)))
    return fired


@pytest.mark.parametrize(
    ("expression", "zone", "start"),
    [
        ("30 2 * * *", NEW_YORK, datetime(2026, 3, 6, 12, tzinfo=UTC)),
        ("0 30 1 * * ?", NEW_YORK, datetime(2026, 10, 30, 12, tzinfo=UTC)),
        ("*/30 * * * *", NEW_YORK, datetime(2026, 11, 1, 3, 50, tzinfo=UTC)),
        ("*/30 * * * *", NEW_YORK, datetime(2026, 3, 8, 5, 10, tzinfo=UTC)),
        ("0 2 * * *", BERLIN, datetime(2026, 3, 27, 12, tzinfo=UTC)),
        ("0 15 2 * * ?", BERLIN, datetime(2026, 10, 23, 12, tzinfo=UTC)),
        ("*/20 * * * *", BERLIN, datetime(2026, 10, 24, 23, 10, tzinfo=UTC)),
    ],
)
def test_next_runs_are_the_times_beat_fires(expression, zone, start):
    """The times the API shows are the times Celery's crontab (what beat runs) picks."""
    expected = beat_fire_times(expression, zone, start, 8)
    assert fires(expression, zone, start, 8) == expected


def test_previous_fire_time():
    crontab = cron.parse("0 2 * * *")
    at = local(BERLIN, 2026, 6, 3, 1, 59)
    assert cron.previous_fire_time(crontab, BERLIN, at).isoformat() == "2026-06-02T02:00:00+02:00"
    assert cron.previous_fire_time(crontab, BERLIN, local(BERLIN, 2026, 6, 3, 2)).isoformat() == (
        "2026-06-03T02:00:00+02:00"
    )
    # Across spring forward: the skipped 02:00 fired at 03:00.
    assert cron.previous_fire_time(crontab, BERLIN, local(BERLIN, 2026, 3, 29, 12)).isoformat() == (
        "2026-03-29T03:00:00+02:00"
    )
    leap = cron.parse("0 0 29 2 *")
    assert cron.previous_fire_time(leap, UTC, datetime(2027, 6, 1, tzinfo=UTC)).isoformat() == (
        "2024-02-29T00:00:00+00:00"
    )
