"""What a dead-letter sink receives, and what a subscriber's answer means as a reply (pure functions)."""

from __future__ import annotations

import base64

import pytest

from core.delivery.deadletter import ERROR_DATA_MAX, dead_letter_event
from core.delivery.reply import reply_of
from core.delivery.sender import Attempt
from core.events import Event

EVENT = Event({"specversion": "1.0", "id": "e1", "source": "/s", "type": "t"}, b"{}")


@pytest.mark.parametrize(
    ("status", "body", "code", "data"),
    [
        (500, b"oops", "500", base64.b64encode(b"oops").decode()),
        (None, b"dispatch error: timeout", "500", base64.b64encode(b"dispatch error: timeout").decode()),
        (400, b"", "400", None),
        (503, b"x" * 5000, "503", base64.b64encode(b"x" * 5000).decode()[:ERROR_DATA_MAX]),
    ],
)
def test_dead_letter_extensions(status: int | None, body: bytes, code: str, data: str | None) -> None:
    dead = dead_letter_event(EVENT, "http://sub/", status, body)
    assert dead.attributes["knativeerrordest"] == "http://sub/"
    assert dead.attributes["knativeerrorcode"] == code
    assert dead.attributes.get("knativeerrordata") == data
    assert "knativeerrordest" not in EVENT.attributes  # the original is untouched
    assert dead.data == EVENT.data


BINARY_REPLY = {"ce-specversion": "1.0", "ce-id": "r1", "ce-source": "/r", "ce-type": "reply",
                "Traceparent": "00-ab", "X-Other": "no"}


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (Attempt(200, b"{}", BINARY_REPLY, "application/json"), "r1"),
        (Attempt(202, b"{}", BINARY_REPLY, "application/json"), None),  # a 202 is never a reply
        (Attempt(200, b"hello", {}, "text/plain"), None),  # not a CloudEvent
        (Attempt(200, b"", {"ce-specversion": "1.0", "ce-id": "r1"}, None), 502),  # malformed: like a 502
    ],
)
def test_what_an_answer_means_as_a_reply(attempt: Attempt, expected: str | int | None) -> None:
    reply = reply_of(attempt)
    if expected is None:
        assert reply is None
    elif isinstance(expected, int):
        assert isinstance(reply, Attempt)
        assert reply.status == expected
    else:
        assert isinstance(reply, Event)
        assert reply.id == expected
        assert reply.headers == {"traceparent": "00-ab"}  # pass-through headers only
