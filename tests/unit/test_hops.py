"""Arrival time and TTL loop prevention, as a producer and a replying subscriber see them."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from unittest import mock

import pytest

from core import hops
from core.errors import TTLExhausted
from core.events import Event
from core.hops import ARRIVAL_TIME, TTL, enter_broker, inherit_ttl, leave_broker, now_rfc3339, rfc3339


def _event(**extra: str | int | bool) -> Event:
    return Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", **extra})


def test_first_entry_gets_the_maximum_ttl_and_an_arrival_time() -> None:
    event = _event()
    enter_broker(event, max_ttl=255)
    assert event.attributes[TTL] == 255
    assert str(event.attributes[ARRIVAL_TIME]).endswith("Z")


def test_re_entry_decrements_and_zero_is_refused() -> None:
    event = _event(knativebrokerttl="3")
    enter_broker(event, max_ttl=255)
    assert event.attributes[TTL] == 2
    enter_broker(event, max_ttl=255)
    assert event.attributes[TTL] == 1
    with pytest.raises(TTLExhausted) as err:
        enter_broker(event, max_ttl=255)
    assert err.value.status == 400


def test_a_producer_ttl_of_one_is_refused_and_garbage_is_replaced() -> None:
    with pytest.raises(TTLExhausted):
        enter_broker(_event(knativebrokerttl=1), max_ttl=255)
    event = _event(knativebrokerttl="many")
    enter_broker(event, max_ttl=10)
    assert event.attributes[TTL] == 10


def test_subscribers_never_see_the_ttl_and_replies_inherit_it() -> None:
    event = _event(knativebrokerttl=7)
    assert leave_broker(event) == 7
    assert TTL not in event.attributes
    reply = _event()
    inherit_ttl(reply, 7)
    enter_broker(reply, max_ttl=255)
    assert reply.attributes[TTL] == 6


def test_a_reply_loop_ends_after_max_ttl_generations() -> None:
    event = _event()
    hops = 0
    with pytest.raises(TTLExhausted):
        while True:
            enter_broker(event, max_ttl=255)
            hops += 1
            ttl = leave_broker(event)
            event = _event()
            inherit_ttl(event, ttl)
    assert hops == 255


@pytest.mark.parametrize("sent", [100000, "100000", 256, 2**31 - 1])
def test_a_ttl_above_the_maximum_is_capped_to_it(sent: str | int) -> None:
    event = _event(**{TTL: sent})
    enter_broker(event, max_ttl=255)
    assert event.attributes[TTL] == 254  # capped, then this entry's hop
    small = _event(**{TTL: sent})
    enter_broker(small, max_ttl=3)
    assert small.attributes[TTL] == 2


def _datetimes(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("at", [
    0.0, 1_000_000_000.0, 1_764_633_599.9999995, 1_764_633_599.9999994, 1_764_633_600.0000005,
    1_764_633_600.0000015, 1_764_633_599.999999, 4_102_444_799.5, 951_782_400.25,  # 2000-02-29
])
def test_the_arrival_stamp_is_what_datetime_makes_of_the_same_clock(at: float) -> None:
    # The date is formatted once per second; each stamp must still be datetime's, to the microsecond,
    # rounding included (half a microsecond before a second rolls the second over).
    assert rfc3339(at) == _datetimes(at)
    with mock.patch.object(hops.time, "time", return_value=at):
        assert now_rfc3339() == _datetimes(at)


def test_stamps_across_many_seconds_and_back_match_datetime() -> None:
    rng = random.Random(7)
    clock = [rng.uniform(0, 4e9) for _ in range(2000)]
    clock += [t + d for t in clock[:200] for d in (0.4999995e-6, 1.0, -1.0)]  # the cached second changes
    for at in clock:
        assert rfc3339(at) == _datetimes(at), at
