"""ISO 8601 durations (`PT0.2S`, `PT1M`, `P1D`) as Knative's DeliverySpec writes them."""

from __future__ import annotations

from datetime import timedelta

import isodate


def parse_ms(text: str) -> int:
    """Milliseconds in an ISO 8601 duration; raises ValueError naming what is wrong.

    Years and months have no fixed length, so they are refused rather than guessed.
    """
    if not isinstance(text, str) or not text.startswith("P") or not any(c.isdigit() for c in text):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. PT0.2S)")
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. PT0.2S): {exc}") from None
    if not isinstance(value, timedelta):
        raise ValueError(f"{text!r} uses years or months, which have no fixed length")
    if value < timedelta(0):
        raise ValueError(f"{text!r} is negative")
    return round(value.total_seconds() * 1000)
