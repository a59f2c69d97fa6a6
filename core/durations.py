"""ISO 8601 durations (`PT0.2S`, `PT1M`, `P1D`) as Knative's DeliverySpec writes them."""

from __future__ import annotations

import functools
from datetime import timedelta

import isodate

# Knative reads durations into Go's time.Duration (int64 nanoseconds): nothing longer can mean anything.
LONGEST = timedelta(microseconds=(2**63 - 1) // 1000)


def parse_ms(text: str) -> int:
    """Milliseconds in an ISO 8601 duration; raises ValueError naming what is wrong.

    Years and months have no fixed length, so they are refused rather than guessed. Cached: a pass over
    10,000 Triggers reads their Broker's same few durations 10,000 times (a refusal is not cached). Only
    strings reach the cache: a manifest may put any JSON value here (`backoffDelay: {}`), and a dict or
    list is refused with the field's error, not a TypeError from the cache's hashing.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. PT0.2S)")
    return _parse_ms(text)


@functools.lru_cache(maxsize=1024)
def _parse_ms(text: str) -> int:
    if not text.startswith("P") or not any(c.isdigit() for c in text):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. PT0.2S)")
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. PT0.2S): {exc}") from None
    except OverflowError:  # `P9999999999D`: more days than a timedelta holds
        raise ValueError(f"{text!r} is longer than the longest duration (about 292 years)") from None
    if not isinstance(value, timedelta):
        raise ValueError(f"{text!r} uses years or months, which have no fixed length")
    if value < timedelta(0):
        raise ValueError(f"{text!r} is negative")
    if value > LONGEST:
        raise ValueError(f"{text!r} is longer than the longest duration (about 292 years)")
    return round(value.total_seconds() * 1000)
