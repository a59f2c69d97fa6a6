"""What a Broker does to an event each time it enters: arrival time and loop prevention (TTL).

Knative's MT broker stamps `knativearrivaltime` at ingress and keeps a `knativebrokerttl` extension: set
to the maximum on first entry, decremented on every re-entry (a reply), the event refused once it
reaches zero. Subscribers never see the TTL; a reply inherits the TTL of the event it answers, so the
next entry decrements it. Ingress (events from producers) and dispatcher (replies) both apply these rules,
and both cap a TTL above the Broker's maximum to it.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Final

from core.errors import TTLExhausted
from core.events import Event

ARRIVAL_TIME: Final = "knativearrivaltime"
TTL: Final = "knativebrokerttl"
DEFAULT_MAX_TTL: Final = 255


_second = -1
_prefix = ""


def rfc3339(at: float) -> str:
    """A CloudEvents `time` (RFC 3339, UTC, microseconds) for the POSIX time `at`, as datetime's isoformat
    writes it. The ingress stamps one on every event, so the date and time of day are formatted once per
    second and only the microseconds per call: `now_rfc3339` 1.2-1.3 µs against 3.1 µs with isoformat
    (tests/unit/test_hops.py holds the two equal, rounding included)."""
    global _second, _prefix
    # As datetime.fromtimestamp does it: the fraction of the second, scaled, rounded half to even.
    fraction, whole = math.modf(at)
    second, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    if second != _second:
        _prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second = second
    return f"{_prefix}{micros:06d}Z"


def now_rfc3339() -> str:
    return rfc3339(time.time())


def enter_broker(event: Event, *, max_ttl: int = DEFAULT_MAX_TTL, arrival: str | None = None) -> None:
    """Stamp arrival time and apply the TTL rules in place; raise TTLExhausted when the loop budget is spent."""
    raw = event.attributes.get(TTL)
    ttl: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        ttl = raw
    elif isinstance(raw, str):
        try:
            ttl = int(raw)
        except ValueError:
            ttl = None
    # A TTL above the maximum is capped, not honoured: a producer may lower the loop budget, never raise it.
    ttl = max_ttl if ttl is None else max(min(ttl, max_ttl) - 1, 0)
    if ttl <= 0:
        raise TTLExhausted(
            f"{TTL} reached 0: the event has looped through the broker too often (a reply loop?)", field=TTL
        )
    event.attributes[TTL] = ttl
    event.attributes[ARRIVAL_TIME] = arrival or now_rfc3339()


def leave_broker(event: Event) -> int | None:
    """Strip the TTL before an event goes to a subscriber; returns it so a reply can inherit it."""
    raw = event.attributes.pop(TTL, None)
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def for_subscriber(event: Event) -> tuple[Event, int | None]:
    """`event` as a Broker's subscribers get it (`leave_broker` on a copy) and its TTL, made once for all
    the Triggers that deliver it: each one's delivery shares the copy and must not change it."""
    made = event.subscriber_form
    if made is None:
        copy = event.copy()
        made = event.subscriber_form = (copy, leave_broker(copy))
    return made


def inherit_ttl(reply: Event, ttl: int | None) -> None:
    if ttl is not None:
        reply.attributes[TTL] = ttl
