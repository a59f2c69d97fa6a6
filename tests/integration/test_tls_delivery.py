"""Delivery to https subscribers, verified against the Destination's CACerts: Triggers, their dead-letter
sinks, Subscriptions and sources, with real https servers whose certificates the tests make."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.certs import Authority, make_ca
from tests.support.manifests import BROKER, trigger
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, eventually


@pytest.fixture(scope="module")
def ca() -> Authority:
    return make_ca("subscriber CA")


@pytest.fixture
async def https_receiver(ca: Authority) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start(tls=ca.server_context())
    yield receiver
    await receiver.stop()


@pytest.fixture
async def dead_letters() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


async def _ready(stack: Stack, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = {}

    async def ready() -> bool:
        nonlocal obj
        obj = await stack.get(kind, "ns1", name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))

    await eventually(ready)
    return obj


async def test_trigger_delivers_to_https_subscriber_with_its_ca(stack: Stack, https_receiver: Receiver,
                                                                 ca: Authority) -> None:
    assert https_receiver.url.startswith("https://")
    subscriber = {"uri": https_receiver.url, "CACerts": ca.pem}
    await stack.apply(BROKER, trigger("t1", https_receiver.url, subscriber=subscriber))
    obj = await _ready(stack, "trigger", "t1")
    assert obj["status"]["subscriberUri"] == https_receiver.url
    assert obj["status"]["subscriberCACerts"] == ca.pem
    assert await stack.send("/ns1/default", event("tls-1")) == 202
    received = await https_receiver.wait_for(1)
    assert [e.id for e in received] == ["tls-1"]


async def test_wrong_ca_fails_each_attempt_then_dead_letters(
        stack: Stack, https_receiver: Receiver, dead_letters: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="nerve.delivery")
    wrong = make_ca("someone else's CA")
    delivery = {"retry": 2, "backoffDelay": "PT0.01S", "deadLetterSink": {"uri": dead_letters.url}}
    await stack.apply(BROKER, trigger("t1", https_receiver.url, delivery=delivery,
                                      subscriber={"uri": https_receiver.url, "CACerts": wrong.pem}))
    await _ready(stack, "trigger", "t1")
    assert await stack.send("/ns1/default", event("wrong-ca")) == 202
    (dead,) = await dead_letters.wait_for(1)
    await https_receiver.settle(0.2)
    assert https_receiver.received == []  # the handshake failed: nothing was ever posted
    assert dead.id == "wrong-ca"
    assert dead.attributes["knativeerrordest"] == https_receiver.url
    assert dead.attributes["knativeerrorcode"] == "500"
    why = base64.b64decode(str(dead.attributes["knativeerrordata"])).decode()
    assert "not verified" in why and "CERTIFICATE_VERIFY_FAILED" in why
    lines = [r.getMessage() for r in caplog.records if "not verified" in r.getMessage()]
    assert len(lines) == 3  # one per attempt: the first and two retries
    assert https_receiver.url in lines[0] and "CACerts" in lines[0]


async def test_without_ca_certs_the_system_trust_store_decides(stack: Stack, https_receiver: Receiver,
                                                               dead_letters: Receiver) -> None:
    delivery = {"retry": 0, "deadLetterSink": {"uri": dead_letters.url}}
    await stack.apply(BROKER, trigger("t1", https_receiver.url, delivery=delivery))
    await _ready(stack, "trigger", "t1")
    assert await stack.send("/ns1/default", event("no-ca")) == 202
    (dead,) = await dead_letters.wait_for(1)
    assert dead.id == "no-ca" and https_receiver.received == []


async def test_https_dead_letter_sink_verified_with_its_ca(stack: Stack, https_receiver: Receiver,
                                                           ca: Authority) -> None:
    delivery = {"retry": 0, "deadLetterSink": {"uri": https_receiver.url, "CACerts": ca.pem}}
    await stack.apply(BROKER, trigger("t1", "http://127.0.0.1:9/", delivery=delivery))
    obj = await _ready(stack, "trigger", "t1")
    assert obj["status"]["deadLetterSinkCACerts"] == ca.pem
    assert await stack.send("/ns1/default", event("to-dls")) == 202
    (dead,) = await https_receiver.wait_for(1)
    assert dead.id == "to-dls" and dead.attributes["knativeerrordest"] == "http://127.0.0.1:9/"


async def test_subscription_delivers_to_https_subscriber_and_reply(stack: Stack, ca: Authority) -> None:
    from core.events import Event
    from tests.support.receiver import Answer

    def answer(_: int, ev: Event) -> Answer:
        return Answer(200, {"Ce-Id": f"reply-{ev.id}", "Ce-Specversion": "1.0", "Ce-Type": "reply",
                            "Ce-Source": "/subscriber"}, b"")

    subscriber, reply = Receiver(answer), Receiver()
    await subscriber.start(tls=ca.server_context())
    await reply.start(tls=ca.server_context())
    try:
        await stack.apply(
            {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel",
             "metadata": {"namespace": "ns1", "name": "c1"}},
            {"apiVersion": "messaging.knative.dev/v1", "kind": "Subscription",
             "metadata": {"namespace": "ns1", "name": "s1"},
             "spec": {"channel": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "c1"},
                      "subscriber": {"uri": subscriber.url, "CACerts": ca.pem},
                      "reply": {"uri": reply.url, "CACerts": ca.pem}}})
        obj = await _ready(stack, "subscription", "s1")
        physical = obj["status"]["physicalSubscription"]
        assert physical["subscriberCACerts"] == ca.pem and physical["replyCACerts"] == ca.pem
        assert await stack.send("/channels/ns1/c1", event("via-channel")) == 202
        assert [e.id for e in await subscriber.wait_for(1)] == ["via-channel"]
        assert [e.id for e in await reply.wait_for(1)] == ["reply-via-channel"]
    finally:
        await subscriber.stop()
        await reply.stop()


async def test_source_sink_verified_with_its_ca(stack: Stack, https_receiver: Receiver, ca: Authority) -> None:
    await stack.apply({"apiVersion": "sources.knative.dev/v1", "kind": "ApiServerSource",
                       "metadata": {"namespace": "ns1", "name": "watch"},
                       "spec": {"resources": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                                "sink": {"uri": https_receiver.url, "CACerts": ca.pem}}})
    obj = await _ready(stack, "apiserversource", "watch")
    assert obj["status"]["sinkCACerts"] == ca.pem
    await stack.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns1", "name": "cm"},
                       "data": {"a": "1"}})
    (sent,) = await https_receiver.wait_for(1)
    assert sent.type == "dev.knative.apiserver.ref.add"


async def test_invalid_ca_certs_refused_at_apply(stack: Stack) -> None:
    bad = trigger("t1", "https://example.test/", subscriber={"uri": "https://example.test/", "CACerts": "oops"})
    async with stack.session.post(f"{stack.api}/api/v1/apply", json={"items": [BROKER, bad]}) as r:
        assert r.status == 400
        body = await r.json()
    assert [(d["field"], d["reason"]) for d in body["details"]] == \
        [("spec.subscriber.CACerts", "not a PEM certificate")]
