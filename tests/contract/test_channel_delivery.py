"""Channels and Subscriptions as a subscriber sees them, on every backend: fan-out to each Subscription
on its own, dead letters, replies onward.

Every subscriber and dead-letter sink here is a real HTTP server on loopback; the Channel names no
channelTemplate, so it lands on the backend under test (tests/contract/conftest.py).
"""

from __future__ import annotations

import asyncio
import base64

from tests.support.manifests import BROKER, channel, quick_dead_letter, subscription, trigger
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event

PATH = "/channels/ns1/my-channel"


async def _started(script: object = None) -> Receiver:
    r = Receiver(script)  # type: ignore[arg-type]
    await r.start()
    return r


def _ready(obj: dict[str, object]) -> dict[str, str]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")  # type: ignore[index, union-attr]


async def test_every_subscription_gets_every_event_once_as_sent(stack: Stack) -> None:
    one, two = await _started(), await _started()
    try:
        await stack.apply(channel(), subscription("sub-1", one.url), subscription("sub-2", two.url))
        ch = await stack.get("channel", "ns1", "my-channel")
        assert _ready(ch)["status"] == "True", ch["status"]
        assert ch["status"]["address"]["url"] == f"{stack.ingress}{PATH}"
        sent = [event(f"e{i}", type_="dev.nerve.channel", data=f'{{"n": {i}}}'.encode(), knativehello="world")
                for i in range(5)]
        for e in sent:
            assert await stack.send(PATH, e) == 202
        for receiver in (one, two):
            await receiver.wait_for(5)
        await one.settle()
        for receiver in (one, two):
            assert sorted(receiver.ids) == [e.id for e in sent]
            by_id = {r.event.id: r for r in receiver.received}
            for e in sent:
                got = by_id[e.id]
                assert got.body == e.data
                # A channel hands every attribute on as it came: no arrival time, no TTL added.
                assert got.event.attributes == e.attributes
                assert got.headers["Kn-Namespace"] == "ns1"
                assert got.headers["Prefer"] == "reply"
    finally:
        await one.stop()
        await two.stop()


async def test_a_failing_subscriber_dead_letters_while_the_other_gets_every_event_on_time(stack: Stack) -> None:
    # The failing one is slow to fail: each of its events takes 3 attempts of 0.5 s plus 0.5 s and 1 s of
    # back-off, 3 s in all, before it is dead-lettered.
    failing = await _started(lambda i, e: Answer(500, body=b'{"message": "catastrophic failure"}', delay_s=0.5))
    healthy, dls = await _started(), await _started()
    try:
        await stack.apply(
            channel(),
            subscription("failing", failing.url, delivery={"retry": 2, "backoffDelay": "PT0.5S",
                                                           "deadLetterSink": {"uri": dls.url}}),
            subscription("healthy", healthy.url),
        )
        ids = [f"e{i}" for i in range(5)]
        start = asyncio.get_running_loop().time()
        for i in ids:
            assert await stack.send(PATH, event(i)) == 202
        await healthy.wait_for(5)
        # The healthy Subscription had every event before the failing one gave up on its first.
        assert healthy.received[-1].at - start < 2.0, healthy.received[-1].at - start
        await dls.wait_for(5, timeout=30)
        assert healthy.received[-1].at < dls.received[0].at
        assert sorted(healthy.ids) == ids
        await dls.wait_for(5)
        await failing.settle()
        assert sorted(failing.ids) == sorted(ids * 3)
        dead = {e.id: e for e in dls.events}
        assert sorted(dead) == ids
        for e in dead.values():
            assert e.attributes["knativeerrorcode"] == "500"
            assert e.attributes["knativeerrordest"] == failing.url
            assert base64.b64decode(str(e.attributes["knativeerrordata"])) == b'{"message": "catastrophic failure"}'
    finally:
        for r in (failing, healthy, dls):
            await r.stop()


async def test_a_reply_to_a_broker_reaches_a_trigger_of_that_broker(stack: Stack) -> None:
    def answer(i: int, e: object) -> Answer:
        return Answer(200, headers={"Ce-Id": "reply-1", "Ce-Specversion": "1.0", "Ce-Type": "dev.nerve.reply",
                                    "Ce-Source": "/replier", "Content-Type": "application/json"},
                      body=b'{"reply": true}')

    replier, sink = await _started(answer), await _started()
    try:
        broker_ref = {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}
        await stack.apply(BROKER, trigger("replies", sink.url, filter={"attributes": {"type": "dev.nerve.reply"}}),
                          channel(), subscription("sub", replier.url, reply=broker_ref))
        sub = await stack.get("subscription", "ns1", "sub")
        assert _ready(sub)["status"] == "True", sub["status"]
        broker = await stack.get("broker", "ns1", "default")
        assert sub["status"]["physicalSubscription"]["replyUri"] == broker["status"]["address"]["url"]
        assert await stack.send(PATH, event("original")) == 202
        [reply] = await sink.wait_for(1)
        assert reply.id == "reply-1"
        assert sink.received[0].body == b'{"reply": true}'
        assert replier.ids == ["original"]
    finally:
        await replier.stop()
        await sink.stop()


async def test_a_reply_that_cannot_be_delivered_dead_letters_the_original(stack: Stack) -> None:
    def answer(i: int, e: object) -> Answer:
        return Answer(200, headers={"Ce-Id": f"r{i}", "Ce-Specversion": "1.0", "Ce-Type": "dev.nerve.reply",
                                    "Ce-Source": "/replier"}, body=b"")

    replier, reply_sink = await _started(answer), await _started(lambda i, e: Answer(503))
    dls = await _started()
    try:
        await stack.apply(channel(), subscription("sub", replier.url, reply={"uri": reply_sink.url},
                                                  delivery=quick_dead_letter(dls.url)))
        assert await stack.send(PATH, event("original")) == 202
        [dead] = await dls.wait_for(1)
        assert dead.id == "original"
        assert dead.attributes["knativeerrordest"] == reply_sink.url
    finally:
        for r in (replier, reply_sink, dls):
            await r.stop()


async def test_a_channel_answers_as_knatives_channels_do(stack: Stack) -> None:
    sub = await _started()
    try:
        await stack.apply(channel(), subscription("sub", sub.url))
        url = f"{stack.ingress}{PATH}"
        async with stack.session.put(url, data=b"{}") as response:
            assert response.status == 405
            assert "POST" in response.headers["Allow"]
        bad = {"Ce-Id": "bad", "Ce-Specversion": "10.0", "Ce-Type": "t", "Ce-Source": "/s"}
        async with stack.session.post(url, data=b"{}", headers=bad) as response:
            assert response.status == 400
        async with stack.session.post(f"{stack.ingress}/channels/ns1/nowhere", data=b"{}",
                                      headers={**bad, "Ce-Specversion": "1.0"}) as response:
            assert response.status == 404
        # Knative's own address form: the channel named by the Host header; a knative- header passes through.
        assert await stack.send("/", event("by-host"), {"Host": "my-channel-kn-channel.ns1.svc.cluster.local",
                                                        "knative-hello": "world"}) == 202
        [got] = await sub.wait_for(1)
        assert got.id == "by-host"
        assert sub.received[0].headers["knative-hello"] == "world"
        await sub.settle()
        assert sub.ids == ["by-host"]  # the refused ones never reached it
    finally:
        await sub.stop()


async def test_a_subscription_to_a_concrete_channel_kind(stack: Stack) -> None:
    kinds = {"memory": ("InMemoryChannel", "messaging.knative.dev/v1"),
             "kafka": ("KafkaChannel", "messaging.knative.dev/v1beta1"),
             "nats": ("NatsJetStreamChannel", "messaging.knative.dev/v1alpha1")}
    kind, version = kinds[stack.nerve.settings.backend]
    sub = await _started()
    try:
        await stack.apply(channel("direct", kind=kind, api_version=version),
                          subscription("sub", sub.url, channel="direct", channel_kind=kind,
                                       channel_api_version=version))
        assert await stack.send("/channels/ns1/direct", event("d1")) == 202
        assert [e.id for e in await sub.wait_for(1)] == ["d1"]
        # Re-applying the channel as written keeps the subscribers Nerve wrote into its spec.
        assert (await stack.apply(channel("direct", kind=kind, api_version=version)))[0]["outcome"] == "unchanged"
        stored = await stack.get(kind, "ns1", "direct")
        assert [s["name"] for s in stored["spec"]["subscribers"]] == ["sub"]
    finally:
        await sub.stop()


async def test_channels_chain_through_replies_and_a_channel_can_be_a_dead_letter_sink(stack: Stack) -> None:
    def echo(i: int, e: object) -> Answer:
        return Answer(200, headers={"Ce-Id": f"reply-{i}", "Ce-Specversion": "1.0", "Ce-Type": "dev.nerve.reply",
                                    "Ce-Source": "/echo"}, body=b"")

    first, last, dead = await _started(echo), await _started(), await _started()
    failing = await _started(lambda i, e: Answer(500))

    def ref(name: str) -> dict[str, object]:
        return {"ref": {"apiVersion": "messaging.knative.dev/v1", "kind": "Channel", "name": name}}

    try:
        await stack.apply(
            channel(), channel("second"), channel("dead-letters"),
            subscription("to-first", first.url, reply=ref("second")),
            subscription("on-second", last.url, channel="second"),
            subscription("failing", failing.url, delivery={"retry": 1, "deadLetterSink": ref("dead-letters")}),
            subscription("on-dead-letters", dead.url, channel="dead-letters"),
        )
        for name in ("to-first", "on-second", "failing", "on-dead-letters"):
            sub = await stack.get("subscription", "ns1", name)
            assert _ready(sub)["status"] == "True", (name, sub["status"])
        assert await stack.send(PATH, event("e1")) == 202
        [reply] = await last.wait_for(1)
        assert (reply.id, reply.type) == ("reply-0", "dev.nerve.reply")
        [dead_letter] = await dead.wait_for(1)
        assert dead_letter.id == "e1"
        assert dead_letter.attributes["knativeerrorcode"] == "500"
    finally:
        for r in (first, last, dead, failing):
            await r.stop()
