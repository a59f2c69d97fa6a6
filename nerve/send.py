"""`nerve send`: a convenience producer that POSTs one CloudEvent, binary or structured mode."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

from core.events import STRUCTURED_CONTENT_TYPE, Event, to_binary, to_structured


def build(event_type: str, source: str, data: str | None, *, event_id: str | None, content_type: str,
          extensions: dict[str, str]) -> Event:
    attributes: dict[str, str | int | bool] = {
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": source, "type": event_type,
        **extensions,
    }
    if data is not None:
        attributes["datacontenttype"] = content_type
    return Event(attributes, None if data is None else data.encode())


def send(url: str, event: Event, *, structured: bool, timeout_s: float = 30.0) -> tuple[int, str]:
    if structured:
        headers, body = {"Content-Type": STRUCTURED_CONTENT_TYPE}, to_structured(event)
    else:
        headers, body = to_binary(event)
    # urllib labels any body, even an empty one, application/x-www-form-urlencoded when no Content-Type
    # is set: an event without data goes with no body at all, so no content type is invented for it.
    data = body if body or "Content-Type" in headers else None
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def describe_answer(status: int, body: str) -> str:
    try:
        reason = json.loads(body).get("reason", body)
    except (ValueError, AttributeError):
        reason = body
    return f"{status}: {reason}" if reason else str(status)
