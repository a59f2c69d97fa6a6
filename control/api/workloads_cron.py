"""A CronJob's `schedule`: Kubernetes' five-field cron, its `@hourly`-style descriptors, and (a Nerve
extension, so tests and laptops need not wait a minute) an optional leading seconds field, as Knative's
PingSource writes it (`*/2 * * * * *` = every 2 seconds).

croniter puts a seconds field last, so a six-field schedule is rotated before croniter reads it.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

# Kubernetes' robfig/cron accepts these descriptors; `@every` is not a cron schedule and is refused there too.
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def croniter_form(schedule: str) -> str:
    """The expression croniter reads: six fields move their leading seconds field to the end."""
    fields = schedule.split()
    if len(fields) == 6:
        return " ".join([*fields[1:], fields[0]])
    return " ".join(fields)


def has_seconds(schedule: str) -> bool:
    return len(schedule.split()) == 6


def schedule_problem(schedule: object) -> str | None:
    """Why `schedule` is not a cron schedule Nerve runs, or None."""
    if not isinstance(schedule, str) or not schedule.strip():
        return "required: a cron schedule such as \"*/5 * * * *\""
    text = schedule.strip()
    if text.startswith("@"):
        return None if text in _DESCRIPTORS else (
            f"{schedule!r}: unknown descriptor; use one of {', '.join(_DESCRIPTORS)} or five cron fields")
    if len(text.split()) not in (5, 6):
        return f"{schedule!r}: expected five fields (minute hour day-of-month month day-of-week), " \
               "or six with a leading seconds field"
    if "?" in text:  # Quartz's "no specific value": robfig/cron reads it as "*"
        text = text.replace("?", "*")
    if not croniter.is_valid(croniter_form(text)):
        return f"{schedule!r}: not a valid cron schedule"
    return None


def timezone_problem(name: object) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        return "must be an IANA time zone name such as Europe/Berlin"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r}: unknown time zone (an IANA name such as Europe/Berlin)"
    return None


def _zone(name: str | None) -> tzinfo:
    return ZoneInfo(name or "UTC")


def _iter(schedule: str, start: datetime, zone: str | None) -> croniter:
    return croniter(croniter_form(schedule.strip().replace("?", "*")), start.astimezone(_zone(zone)))


def next_after(schedule: str, after: datetime, zone: str | None = None) -> datetime:
    """The first tick strictly after `after`."""
    value: datetime = _iter(schedule, after, zone).get_next(datetime)
    return value


def latest_due(schedule: str, since: datetime, now: datetime, zone: str | None = None) -> datetime | None:
    """The most recent tick t with since < t <= now, or None: as Kubernetes' CronJob controller, a run
    missed while nothing ran is made up once (the latest), never once per missed tick."""
    first = next_after(schedule, since, zone)
    if first > now:
        return None
    previous: datetime = _iter(schedule, now, zone).get_prev(datetime)
    # croniter's get_prev is strictly before `now`; a tick exactly at `now` counts.
    exact = next_after(schedule, previous, zone)
    return exact if exact <= now else previous
