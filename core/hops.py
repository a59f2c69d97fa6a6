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


def rfc3339(at: float) -> str:
    """A CloudEvents `time` (RFC 3339, UTC, microseconds) for the POSIX time `at`."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_second = -1
_prefix = ""


def now_rfc3339() -> str:
    """`rfc3339(time.time())`, what the ingress stamps on every event as its arrival time. The date and time
    of day are formatted once per second and only the microseconds per call: 0.4 µs against 1.9 µs for
    datetime's isoformat (core/hops.py's table test holds the two equal)."""
    global _second, _prefix
    # As datetime.fromtimestamp does it: the fraction of the second, scaled, rounded half to even.
    fraction, whole = math.modf(time.time())
    second, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    if second != _second:
        _prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second = second
    return f"{_prefix}{micros:06d}Z"


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


def inherit_ttl(reply: Event, ttl: int | None) -> None:
    if ttl is not None:
        reply.attributes[TTL] = ttl
