"""The dead-letter event: the original plus Knative's error extensions (pure).

    knativeerrordest   the URL whose failure sent the event here (subscriber or reply URL)
    knativeerrorcode   the last HTTP status, or 500 when no answer came (refused, timeout, an error)
    knativeerrordata   the last response body, base64, at most ERROR_DATA_MAX characters
"""

from __future__ import annotations

import base64

from core.events import Event

ERROR_DATA_MAX = 1024


def dead_letter_event(event: Event, destination: str, status: int | None, body: bytes) -> Event:
    dead = event.copy()
    dead.attributes["knativeerrordest"] = destination
    dead.attributes["knativeerrorcode"] = str(status if status is not None else 500)
    if body:
        dead.attributes["knativeerrordata"] = base64.b64encode(body).decode()[:ERROR_DATA_MAX]
    return dead
