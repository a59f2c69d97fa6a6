"""Every event answered 202 ends delivered, dead-lettered, or dropped with a log line and a count.

An unexpected error inside the dispatcher for one event (here the HTTP sender raising for it, as a
bug or an event the client cannot encode would) never acks it silently, and never stops the Trigger.
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.delivery.sender import Sender
from core.events import Event
from tests.support import manifests
from tests.support.manifests import BROKER
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event


def _trigger(name: str, url: str, dls: str | None = None) -> dict[str, Any]:
    return manifests.trigger(name, url, **({"delivery": manifests.quick_dead_letter(dls)} if dls else {}))


def _poison(monkeypatch: pytest.MonkeyPatch, subscriber: str) -> list[str]:
    """The sender raises for the event `poison` on its way to `subscriber` (not to a dead-letter sink)."""
    original = Sender.send
    raised: list[str] = []

    async def send(self: Sender, url: str, ev: Event, **kwargs: Any) -> Any:
        if ev.id == "poison" and url == subscriber:
            raised.append(url)
            raise RuntimeError("injected failure")
        return await original(self, url, ev, **kwargs)

    monkeypatch.setattr(Sender, "send", send)
    return raised


async def _metric(stack: Stack, name: str, labels: dict[str, str]) -> float:
    async with stack.session.get(f"{stack.api}/metrics") as response:
        text = await response.text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_an_error_for_one_event_drops_it_counted_and_logged_and_the_trigger_goes_on(
    stack: Stack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    raised = _poison(monkeypatch, receiver.url)
    await stack.apply(BROKER, _trigger(name, receiver.url))
    with caplog.at_level(logging.ERROR, logger="nerve.delivery"):
        assert await stack.send("/ns1/default", event("poison")) == 202
        assert await stack.send("/ns1/default", event("after")) == 202
        await receiver.wait_for(1)
        await receiver.settle()
    assert receiver.ids == ["after"]
    assert raised == [receiver.url]  # tried once: an error is not retried into a loop
    dropped = {"trigger_name": name, "broker_name": "default", "namespace_name": "ns1", "reason": "error"}
    assert await _metric(stack, "nerve_dispatcher_dropped_total", dropped) == 1
    lines = [r.getMessage() for r in caplog.records if "poison" in r.getMessage()]
    assert any("dropped" in line and "injected failure" in line for line in lines), lines


async def test_an_error_for_one_event_dead_letters_it_when_there_is_a_sink(
    stack: Stack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    dls = Receiver()
    await dls.start()
    try:
        _poison(monkeypatch, receiver.url)
        await stack.apply(BROKER, _trigger(name, receiver.url, dls.url))
        assert await stack.send("/ns1/default", event("poison")) == 202
        assert await stack.send("/ns1/default", event("after")) == 202
        [dead] = await dls.wait_for(1)
        await receiver.wait_for(1)
        await dls.settle()
    finally:
        await dls.stop()
    assert receiver.ids == ["after"]
    assert dead.id == "poison"
    assert dead.attributes["knativeerrordest"] == receiver.url
    assert dead.attributes["knativeerrorcode"] == "500"
    assert "RuntimeError: injected failure" in base64.b64decode(str(dead.attributes["knativeerrordata"])).decode()
    labels = {"trigger_name": name, "namespace_name": "ns1"}
    assert await _metric(stack, "nerve_dispatcher_dead_lettered_total", labels) == 1
    assert await _metric(stack, "nerve_dispatcher_dropped_total", labels) == 0


async def test_a_filter_that_raises_for_one_event_drops_it_counted_and_logged(
    stack: Stack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import dispatcher.egress

    class Fragile:
        def matches(self, attributes: Any) -> bool:
            if attributes["id"] == "poison":
                raise TypeError("filter bug")
            return True

    monkeypatch.setattr(dispatcher.egress, "compile_trigger_filter", lambda attributes, filters: Fragile())
    name = f"t{uuid.uuid4().hex[:8]}"
    await stack.apply(BROKER, _trigger(name, receiver.url))
    with caplog.at_level(logging.ERROR, logger="nerve.dispatcher"):
        assert await stack.send("/ns1/default", event("poison")) == 202
        assert await stack.send("/ns1/default", event("after")) == 202
        await receiver.wait_for(1)
        await receiver.settle()
    assert receiver.ids == ["after"]
    labels = {"trigger_name": name, "namespace_name": "ns1", "reason": "filter_error"}
    assert await _metric(stack, "nerve_dispatcher_dropped_total", labels) == 1
    assert any("poison" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
