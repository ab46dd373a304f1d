"""Cron expressions, Quartz and Unix, translated to the five fields of Celery's crontab.

Pure functions, no database. `parse(text)` reads either dialect and returns a `Crontab`:
the set of values of each field, with day-of-week numbered as Celery numbers it
(0 = Sunday … 6 = Saturday). What Celery's crontab cannot express is refused with a
`CronInvalid` whose message names the field and says why.

- Unix: 5 fields `minute hour day-of-month month day-of-week`; day-of-week 0-7, 0 and 7 =
  Sunday; the macros `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
- Quartz: 6 or 7 fields `second minute hour day-of-month month day-of-week [year]`;
  day-of-week 1-7 = Sunday-Saturday; `?` in day-of-month or day-of-week; ranges may wrap
  (`FRI-MON`, `22-2`). Seconds must be 0 and the year `*`.
- Both: names (`JAN`, `MON`, any case), ranges, lists, steps (`*/15`, `5/15`, `1-30/2`).

`fire_times` / `previous_fire_time` say when beat fires a crontab in a time zone. They follow
Celery's crontab, which is what actually fires: every matching wall-clock time fires once; a
time that occurs twice when clocks go back fires at its first occurrence; a time that does not
exist when clocks go forward fires as if they had not moved yet (02:30 → 03:30 after the jump).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
import itertools
import re
from zoneinfo import ZoneInfo

MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
DAY_NAMES = {name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
#: The longest each month can be (February in a leap year).
MONTH_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: The five fields of Celery's crontab, in cron order.
CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
#: How far fire_times looks for a matching day: Feb 29 can be 8 years away (2096 → 2104).
MAX_SEARCH_DAYS = 366 * 9


class CronInvalid(ValueError):
    """An expression that is malformed or that Celery's crontab cannot run exactly."""


@dataclass(frozen=True)
class _Field:
    name: str  # as in messages: "day-of-week"
    low: int
    high: int
    names: dict[str, int] | None = None
    #: Values that mean another value: Unix day-of-week 7 is Sunday (0).
    aliases: dict[int, int] | None = None
    #: Where `*` ends when `high` is only an alias (Unix day-of-week: 0-6, not 0-7).
    star_high: int | None = None
    #: Quartz lets ranges wrap around (`FRI-MON`, `22-2`); Unix cron does not.
    wraps: bool = False


SECOND = _Field("second", 0, 59)
MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
UNIX_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
UNIX_DAY_OF_WEEK = _Field("day-of-week", 0, 7, DAY_NAMES, aliases={7: 0}, star_high=6)
QUARTZ = {
    field.name: field
    for field in (
        SECOND,
        _Field("minute", 0, 59, wraps=True),
        _Field("hour", 0, 23, wraps=True),
        _Field("day-of-month", 1, 31, wraps=True),
        _Field("month", 1, 12, MONTH_NAMES, wraps=True),
        # Quartz numbers days 1-7 from Sunday; names are the same as Unix's.
        _Field("day-of-week", 1, 7, {name: n + 1 for name, n in DAY_NAMES.items()}, wraps=True),
    )
}

_STEP = re.compile(r"^(?P<base>[^/]*)/(?P<step>[^/]*)$")


@dataclass(frozen=True)
class Crontab:
    """What Celery's crontab runs. Day-of-week: 0 = Sunday … 6 = Saturday."""

    minute: frozenset[int]
    hour: frozenset[int]
    day_of_month: frozenset[int]
    month_of_year: frozenset[int]
    day_of_week: frozenset[int]
    dialect: str  # "quartz" or "unix"

    def fields(self) -> dict[str, str]:
        """The CrontabSchedule / celery.schedules.crontab arguments, compact (`*/15`, `1-5`)."""
        bounds = {
            "minute": (0, 59),
            "hour": (0, 23),
            "day_of_month": (1, 31),
            "month_of_year": (1, 12),
            "day_of_week": (0, 6),
        }
        return {name: _render(getattr(self, name), *bounds[name]) for name in CRONTAB_FIELDS}

    def unix(self) -> str:
        """The same schedule as a 5-field Unix expression (day-of-week 0 = Sunday)."""
        fields = self.fields()
        return " ".join(fields[name] for name in CRONTAB_FIELDS)

    def matches_day(self, day: date) -> bool:
        # Celery requires month, day-of-month and day-of-week to match (parse refuses
        # expressions where Unix cron would accept either of the two day fields).
        return (
            day.month in self.month_of_year
            and day.day in self.day_of_month
            and day.isoweekday() % 7 in self.day_of_week
        )


def parse(text: str) -> Crontab:
    """Read a Quartz (6-7 fields) or Unix (5 fields) expression. Raises CronInvalid."""
    if not isinstance(text, str) or not text.strip():
        raise CronInvalid("is empty; write e.g. `0 2 * * *` (Unix) or `0 0 2 * * ?` (Quartz)")
    text = text.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronInvalid(f"`{text}` is not a known macro; use one of {', '.join(MACROS)}")
        text = MACROS[text.lower()]
    parts = text.split()
    if len(parts) == 5:
        return _parse_unix(parts)
    if len(parts) in (6, 7):
        return _parse_quartz(parts)
    raise CronInvalid(
        f"has {len(parts)} fields; expected 5 (Unix: minute hour day-of-month month day-of-week) "
        "or 6-7 (Quartz: second minute hour day-of-month month day-of-week [year])"
    )


def _parse_unix(parts: list[str]) -> Crontab:
    minute, hour, dom, month, dow = parts
    dom_any, dow_any = dom.startswith(("*", "?")), dow.startswith(("*", "?"))
    if not dom_any and not dow_any:
        raise CronInvalid(
            f"day-of-week `{dow}`: with a day-of-month (`{dom}`) Unix cron runs on days that match either "
            "field, Celery's crontab only on days that match both; set one of them to `*`"
        )
    return _crontab(
        "unix",
        minute=_values(MINUTE, minute),
        hour=_values(HOUR, hour),
        day_of_month=_values(UNIX_DAY_OF_MONTH, dom),
        month_of_year=_values(MONTH, month),
        day_of_week=_values(UNIX_DAY_OF_WEEK, dow),
        day_texts=(dom, month),
    )


def _parse_quartz(parts: list[str]) -> Crontab:
    second, minute, hour, dom, month, dow, *year = parts
    fields = QUARTZ
    if _values(fields["second"], second) != {0}:
        raise CronInvalid(f"second `{second}`: Celery's crontab runs on whole minutes, so seconds must be `0`")
    if year and year[0] != "*":
        raise CronInvalid(
            f"year `{year[0]}`: Celery's crontab has no year field; use `*` and the schedule's start and end dates"
        )
    if dom not in ("?", "*") and dow not in ("?", "*"):
        raise CronInvalid(
            f"day-of-week `{dow}`: Quartz needs `?` in day-of-month or day-of-week when the other one is set"
        )
    return _crontab(
        "quartz",
        minute=_values(fields["minute"], minute),
        hour=_values(fields["hour"], hour),
        day_of_month=_values(fields["day-of-month"], dom),
        month_of_year=_values(fields["month"], month),
        # Quartz 1 (Sunday) … 7 (Saturday) → Celery 0 … 6.
        day_of_week=frozenset(value - 1 for value in _values(fields["day-of-week"], dow)),
        day_texts=(dom, month),
    )


def _crontab(dialect: str, *, day_texts: tuple[str, str], **values: frozenset[int]) -> Crontab:
    crontab = Crontab(dialect=dialect, **values)
    if not any(day <= MONTH_DAYS[month] for month in crontab.month_of_year for day in crontab.day_of_month):
        dom, month = day_texts
        raise CronInvalid(f"day-of-month `{dom}`: there is no such day in month `{month}`, so it would never run")
    return crontab


def _values(field: _Field, text: str) -> frozenset[int]:
    """The values that one field's text selects, aliases folded (Unix day-of-week 7 → 0)."""
    if text == "":
        raise CronInvalid(f"{field.name} is empty")
    values: set[int] = set()
    for item in text.split(","):
        values.update(_item_values(field, text, item))
    if field.aliases:
        values = {field.aliases.get(value, value) for value in values}
    return frozenset(values)


def _item_values(field: _Field, text: str, item: str) -> list[int]:
    def refuse(why: str) -> CronInvalid:
        return CronInvalid(f"{field.name} `{text}`: {why}")

    _refuse_special(field, item, refuse)
    step = 1
    match = _STEP.match(item)
    if match:
        item, step_text = match["base"], match["step"]
        if not step_text.isdigit() or int(step_text) == 0:
            raise refuse(f"the step after `/` must be a positive number, not `{step_text}`")
        step = int(step_text)
        if step > field.high - field.low + 1:
            raise refuse(f"the step {step} is larger than the {field.name} range {field.low}-{field.high}")
        if item == "":
            raise refuse("a step needs a start before `/`, e.g. `*/5` or `0/5`")
    high = field.star_high if field.star_high is not None else field.high
    if item in ("*", "?"):
        if item == "?" and field.name not in ("day-of-month", "day-of-week"):
            raise refuse("`?` is only allowed in day-of-month and day-of-week")
        return list(range(field.low, high + 1, step))
    if "-" in item:
        start_text, _, end_text = item.partition("-")
        start, end = _number(field, start_text, refuse), _number(field, end_text, refuse)
        if start <= end:
            return list(range(start, end + 1, step))
        if not field.wraps:
            raise refuse(f"the range {start_text}-{end_text} starts after it ends")
        return (list(range(start, field.high + 1)) + list(range(field.low, end + 1)))[::step]
    start = _number(field, item, refuse)
    if match:  # `5/15`: from 5 to the end of the range, every 15
        return list(range(start, high + 1, step))
    return [start]


def _refuse_special(field: _Field, item: str, refuse) -> None:
    """Quartz's `L`, `W` and `#` select days relative to a month; Celery's crontab has no such thing."""
    upper = item.upper()
    if upper in (field.names or {}):
        return
    if "#" in upper:
        raise refuse("`#` (the n-th weekday of the month) cannot be expressed in Celery's crontab")
    if upper in ("LW",) or re.fullmatch(r"\d+W", upper):
        raise refuse("`W` (the nearest weekday) cannot be expressed in Celery's crontab")
    if re.fullmatch(r"\d*L(-\d+)?", upper):
        raise refuse("`L` (the last day) cannot be expressed in Celery's crontab")


def _number(field: _Field, text: str, refuse) -> int:
    upper = text.upper()
    if field.names and upper in field.names:
        return field.names[upper]
    if not text.isdigit():
        known = f" or a name ({', '.join(field.names)})" if field.names else ""
        raise refuse(f"`{text}` is not a number{known}")
    value = int(text)
    if not field.low <= value <= field.high:
        raise refuse(f"{value} is outside {field.low}-{field.high}")
    return value


def _render(values: frozenset[int], low: int, high: int) -> str:
    """Compact text for a set of values that Celery's crontab parser reads back exactly."""
    if values == frozenset(range(low, high + 1)):
        return "*"
    ordered = sorted(values)
    steps = {b - a for a, b in itertools.pairwise(ordered)}
    if len(ordered) >= 3 and len(steps) == 1 and (step := steps.pop()) > 1:
        if ordered[0] == low and ordered[-1] + step > high:
            return f"*/{step}"
        return f"{ordered[0]}-{ordered[-1]}/{step}"
    runs: list[list[int]] = []
    for value in ordered:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(map(str, run)) for run in runs)


# --- fire times ----------------------------------------------------------------------


def _day_fire_times(crontab: Crontab, tz: ZoneInfo, day: date) -> list[datetime]:
    """The instants (UTC) at which `crontab` fires on local `day`, ascending, without duplicates."""
    if not crontab.matches_day(day):
        return []
    instants = {
        # fold=0: a repeated time is its first occurrence; a skipped one gets the offset before the jump.
        datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).astimezone(UTC)
        for hour in crontab.hour
        for minute in crontab.minute
    }
    return sorted(instants)


def fire_times(crontab: Crontab, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after `after` (aware), ascending, in `tz`."""
    day = after.astimezone(tz).date() - timedelta(days=1)
    last, quiet_days = after, 0
    while quiet_days < MAX_SEARCH_DAYS:  # any valid crontab fires within that many days
        quiet_days += 1
        for instant in _day_fire_times(crontab, tz, day):
            if instant > last:
                last, quiet_days = instant, 0
                yield instant.astimezone(tz)
        day += timedelta(days=1)


def next_fire_times(crontab: Crontab, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    times = []
    for instant in fire_times(crontab, tz, after):
        times.append(instant)
        if len(times) == count:
            break
    return times


def previous_fire_time(crontab: Crontab, tz: ZoneInfo, at: datetime) -> datetime | None:
    """The latest fire time at or before `at`, in `tz`; None if there is none within years."""
    day = at.astimezone(tz).date() + timedelta(days=1)
    found: list[datetime] = []
    for _ in range(MAX_SEARCH_DAYS):
        earlier = [instant for instant in _day_fire_times(crontab, tz, day) if instant <= at]
        if found:
            # One more day: a skipped time shifted past midnight can make it later than `found`.
            return max(found + earlier).astimezone(tz)
        found = earlier
        day -= timedelta(days=1)
    return max(found).astimezone(tz) if found else None
