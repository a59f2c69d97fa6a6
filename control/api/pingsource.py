"""PingSource (sources.knative.dev/v1; v1beta1 and v1beta2 accepted): a fixed payload on a cron schedule.

The schedule is Knative's: robfig/cron's standard five fields with an OPTIONAL LEADING SECONDS field
(`10 0/1 * * * ?` fires at second 10 of every minute, `*/2 * * * * *` every two seconds), `?` meaning
`*`, the descriptors `@yearly` ... `@hourly`, and `@every` refused as Knative refuses it. croniter, which
computes the ticks, puts an optional seconds field LAST; `normalize_schedule` rewrites a schedule into
croniter's six fields once, here, and the contract carries that form, so the sources service never parses
Knative's spelling itself.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import zoneinfo
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from croniter import croniter

from control.api import columns, schema, source
from control.api.schema import LEAF
from core.errors import FieldError
from core.headers import media_type

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

DEFAULT_SCHEDULE = "* * * * *"
APPLICATION_JSON = "application/json"

SCHEMA = schema.resource(schema.obj({
    **source.DUCK,
    # PingSource's own (`ev:pkg/apis/sources/v1/ping_types.go`)
    "schedule": LEAF,
    "timezone": LEAF,
    "contentType": LEAF,
    "data": LEAF,
    "dataBase64": LEAF,
}))
# Knative's CRD columns (config/core/resources/pingsource.yaml), in the order issue 11 names them: NAME,
# SCHEDULE, SINK, AGE, READY, REASON (the CRD itself lists Sink before Schedule).
COLUMNS = (columns.NAME, columns.field("SCHEDULE", "spec", "schedule"), source.SINK_COLUMN,
           columns.AGE, columns.READY, columns.REASON)

# robfig/cron's descriptors, with the seconds field first (Knative's parser is SecondOptional).
_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
}
_FIELD_NAMES = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_MONTHS = frozenset(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
_DAYS = frozenset(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])
# What robfig/cron reads in a field: numbers, names, `*`, `?`, lists, ranges and steps. croniter also
# reads `L`, `W`, `#` and `H`, which Knative would refuse: they are refused here too.
_FIELD = re.compile(r"[0-9A-Za-z*?,/-]+")
_WORD = re.compile(r"[A-Za-z]+")
_TZ_PREFIX = re.compile(r"(?:CRON_TZ|TZ)=(\S+)\s+")


class ScheduleError(ValueError):
    """Why a schedule is not one Knative would accept."""


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str
    """croniter's six fields: minute hour day-of-month month day-of-week second."""
    timezone: str
    """A `CRON_TZ=` prefix of the schedule, as robfig/cron reads it ("" when none)."""


@functools.lru_cache(maxsize=4096)
def normalize_schedule(schedule: str) -> Schedule:
    """Knative's spelling -> croniter's: seconds moved last (0 when absent), `?` -> `*`, descriptors expanded.

    Cached: every reconcile pass builds every PingSource's contract entry, and checking the six fields
    with croniter costs about a millisecond, which a thousand sources would pay each pass."""
    text = schedule.strip()
    timezone = ""
    prefix = _TZ_PREFIX.match(text)
    if prefix:
        timezone, text = prefix.group(1), text[prefix.end():].strip()
    if text.startswith("@every"):
        raise ScheduleError("@every is not supported by PingSource (Knative refuses it); write a cron "
                            "schedule, e.g. '*/10 * * * * *' for every 10 seconds")
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise ScheduleError(f"unknown descriptor {text!r}; one of {', '.join(sorted(_DESCRIPTORS))}")
        text = _DESCRIPTORS[text]
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise ScheduleError(f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a "
                            f"leading seconds field, got {len(fields)}")
    fields = [f.replace("?", "*") for f in fields]
    for index, (name, value) in enumerate(zip(_FIELD_NAMES, fields, strict=True)):
        _check_field(name, value)
        # Each field alone, so that the error names the field as the user wrote it (croniter's own
        # message shows its reordered expression).
        alone = ["*"] * 6
        alone[index] = value
        try:
            croniter(_croniter_order(alone))
        except (ValueError, KeyError) as exc:
            why = "a bad step" if "step" in str(exc) else "out of range"
            raise ScheduleError(f"the {name} field {value!r} is {why}") from None
    return Schedule(_croniter_order(fields), timezone)


def _croniter_order(fields: list[str]) -> str:
    second, *rest = fields
    return " ".join([*rest, second])


def _check_field(name: str, value: str) -> None:
    if not _FIELD.fullmatch(value):
        raise ScheduleError(f"the {name} field {value!r} has a character cron does not read")
    names = _MONTHS if name == "month" else _DAYS if name == "day-of-week" else frozenset()
    for word in _WORD.findall(value):
        if word.lower() not in names:
            raise ScheduleError(f"the {name} field {value!r}: {word!r} is not a {name} name"
                                if names else f"the {name} field {value!r} takes numbers, not {word!r}")


def zone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone, or ValueError saying why not."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. Europe/Paris, UTC)") from exc


def convert_ping_source(obj: dict[str, Any]) -> None:
    """v1beta1's `jsonData` is v1's `data` with contentType application/json (Knative's conversion);
    v1beta2 already has v1's shape."""
    spec = obj.get("spec")
    if isinstance(spec, dict) and "jsonData" in spec:
        json_data = spec.pop("jsonData")
        if json_data not in (None, ""):
            spec.setdefault("data", json_data)
            spec.setdefault("contentType", APPLICATION_JSON)


def default_ping_source(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if not spec.get("schedule"):
        spec["schedule"] = DEFAULT_SCHEDULE
    source.default_duck(spec, meta["namespace"])


def payload(spec: dict[str, Any]) -> bytes | None:
    """The bytes every tick carries (None when there is no data); the spec is already valid."""
    if spec.get("dataBase64"):
        return base64.b64decode(str(spec["dataBase64"]), validate=True)
    if spec.get("data"):
        return str(spec["data"]).encode()
    return None


def validate_ping_source(obj: dict[str, Any]) -> list[FieldError]:
    namespace, spec = obj["metadata"]["namespace"], obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors = [FieldError(f"spec.{key}", "must be a string") for key in
              ("schedule", "timezone", "contentType", "data", "dataBase64")
              if key in spec and not isinstance(spec[key], str)]
    if errors:
        return errors + source.validate_duck(spec, namespace)
    schedule_tz = ""
    try:
        schedule_tz = normalize_schedule(spec.get("schedule", DEFAULT_SCHEDULE)).timezone
    except ScheduleError as exc:
        errors.append(FieldError("spec.schedule", f"{spec.get('schedule')!r} is not a valid schedule: {exc}"))
    if schedule_tz and spec.get("timezone"):
        errors.append(FieldError("spec.schedule", "names a time zone (CRON_TZ=) and spec.timezone is set too; "
                                                  "use spec.timezone"))
    for path, name in (("spec.timezone", spec.get("timezone")), ("spec.schedule", schedule_tz)):
        if name:
            try:
                zone(name)
            except ValueError as exc:
                errors.append(FieldError(path, str(exc)))
    errors += _validate_data(spec)
    return errors + source.validate_duck(spec, namespace)


def _validate_data(spec: dict[str, Any]) -> list[FieldError]:
    data, encoded = spec.get("data"), spec.get("dataBase64")
    if data and encoded:
        return [FieldError("spec.dataBase64", "data and dataBase64 are mutually exclusive; set one of them")]
    body: bytes | None = None
    path = "spec.data"
    if encoded:
        path = "spec.dataBase64"
        try:
            body = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            return [FieldError(path, f"is not valid base64: {exc}")]
    elif data:
        body = data.encode()
    if body is not None and media_type(spec.get("contentType")) == APPLICATION_JSON:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return [FieldError(path, f"is not valid JSON, as contentType application/json requires: {exc}")]
        if not isinstance(parsed, dict):
            return [FieldError(path, "must be a JSON object when contentType is application/json (as Knative "
                                     "checks it)")]
    return []
