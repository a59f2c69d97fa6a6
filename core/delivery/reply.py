"""Reply routing: what a subscriber's answer means, and where a reply goes.

A reply is a CloudEvent in a 200 answer (a 202 is never one, even when it looks like a CloudEvent:
Knative data-plane spec). It goes to the egress's reply URL, or back into the Broker through a
`ReplyPublisher` the caller supplies (core knows no backend), or nowhere (discardReply).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.delivery.sender import Attempt
from core.errors import InvalidEvent
from core.events import Event, from_http, is_cloudevent_response
from core.headers import pass_through

ReplyPublisher = Callable[[Event], Awaitable[None]]
"""Stores a reply in the Broker it came from. Raises BackendError when the backend did not take it
(the delivery fails and is retried) or TTLExhausted when the reply loop budget is spent (it is dropped)."""


def reply_of(attempt: Attempt) -> Event | Attempt | None:
    """The reply event of a successful attempt; None when there is none; a 502 Attempt when it is malformed."""
    if attempt.status != 200 or not is_cloudevent_response(attempt.content_type, attempt.headers):
        return None
    try:
        [reply] = from_http(attempt.content_type, attempt.headers.items(), attempt.body)
        # Checked like the ingress checks a producer's: a header no backend can store fails here, not later.
        reply.headers = pass_through(attempt.headers.items())
    except (InvalidEvent, ValueError) as exc:
        # A malformed reply fails the delivery like a 502 from the subscriber, and is retried.
        return Attempt(502, f"invalid reply event: {exc}".encode())
    return reply
