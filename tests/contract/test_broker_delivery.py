"""Delivery as a subscriber sees it: retries, dead letters, replies, headers, format, big events.

Every subscriber and dead-letter sink here is a real HTTP server on loopback.
"""

from __future__ import annotations

import base64
import json

from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event

BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: ns1}
"""


def trigger(url: str, name: str = "t1", *, delivery: str = "", filters: str = "{}") -> str:
    return f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}, namespace: ns1}}
spec:
  broker: default
  filter: {{attributes: {filters}}}
  subscriber: {{uri: "{url}"}}
{delivery}
"""


def delivery(
    dls: str | None = None, retry: int = 2, policy: str = "linear", delay: str = "PT0.01S", extra: str = ""
) -> str:
    lines = ["  delivery:", f"    retry: {retry}", f"    backoffPolicy: {policy}", f"    backoffDelay: {delay}"]
    if dls:
        lines.append(f'    deadLetterSink: {{uri: "{dls}"}}')
    if extra:
        lines.append(extra)
    return "\n".join(lines)


async def _started(script: object = None) -> Receiver:
    r = Receiver(script)  # type: ignore[arg-type]
    await r.start()
    return r


async def test_retryable_failures_are_retried_until_success(stack: Stack) -> None:
    flaky = await _started(lambda i, e: Answer(503 if i < 2 else 202))
    dls = await _started()
    try:
        await stack.apply(BROKER, trigger(flaky.url, delivery=delivery(dls.url, retry=3)))
        assert await stack.send("/ns1/default", event("e1")) == 202
        await flaky.wait_for(3)
        await flaky.settle()
        assert flaky.ids == ["e1", "e1", "e1"]
        assert dls.received == []
    finally:
        await flaky.stop()
        await dls.stop()


async def test_404_is_retried_but_400_goes_straight_to_the_dead_letter_sink(stack: Stack) -> None:
    answers = {"retry-me": 404, "bad": 400}
    sub = await _started(lambda i, e: Answer(answers[e.id], body=b'{"message": "catastrophic failure"}'))
    dls = await _started()
    try:
        await stack.apply(BROKER, trigger(sub.url, delivery=delivery(dls.url, retry=2)))
        await stack.send("/ns1/default", event("retry-me"))
        await stack.send("/ns1/default", event("bad"))
        await dls.wait_for(2)
        await sub.settle()
        assert sub.ids.count("retry-me") == 3
        assert sub.ids.count("bad") == 1
        dead = {e.id: e for e in dls.events}
        assert dead["bad"].attributes["knativeerrordest"] == sub.url
        assert dead["bad"].attributes["knativeerrorcode"] == "400"
        assert (
            base64.b64decode(str(dead["bad"].attributes["knativeerrordata"])) == b'{"message": "catastrophic failure"}'
        )
        assert dead["retry-me"].attributes["knativeerrorcode"] == "404"
        assert dead["bad"].data == b"{}"
    finally:
        await sub.stop()
        await dls.stop()


async def test_an_unreachable_subscriber_dead_letters_with_code_500(stack: Stack) -> None:
    dls = await _started()
    try:
        await stack.apply(BROKER, trigger("http://127.0.0.1:9/nothing-listens", delivery=delivery(dls.url, retry=1)))
        await stack.send("/ns1/default", event("lost"))
        [dead] = await dls.wait_for(1)
        assert dead.attributes["knativeerrordest"] == "http://127.0.0.1:9/nothing-listens"
        assert dead.attributes["knativeerrorcode"] == "500"
        assert base64.b64decode(str(dead.attributes["knativeerrordata"])).startswith(b"dispatch error")
        assert "knativebrokerttl" not in dead.attributes
    finally:
        await dls.stop()


async def test_a_slow_subscriber_times_out_per_attempt(stack: Stack) -> None:
    slow = await _started(lambda i, e: Answer(202, delay_s=2.0))
    dls = await _started()
    try:
        await stack.apply(BROKER, trigger(slow.url, delivery=delivery(dls.url, retry=1, extra="    timeout: PT0.2S")))
        await stack.send("/ns1/default", event("slow"))
        [dead] = await dls.wait_for(1, timeout=10)
        assert slow.ids == ["slow", "slow"]
        assert dead.attributes["knativeerrorcode"] == "500"
    finally:
        await slow.stop()
        await dls.stop()


async def test_broker_delivery_is_the_default_and_a_trigger_delivery_replaces_it(stack: Stack) -> None:
    failing = await _started(lambda i, e: Answer(500))
    broker_dls = await _started()
    trigger_dls = await _started()
    try:
        broker = (
            BROKER
            + f"""spec:
  delivery: {{retry: 1, backoffDelay: PT0.01S, deadLetterSink: {{uri: "{broker_dls.url}"}}}}
"""
        )
        await stack.apply(
            broker,
            trigger(failing.url, "inherits"),
            trigger(failing.url, "own", delivery=delivery(trigger_dls.url, retry=0)),
        )
        inherits = await stack.get("trigger", "ns1", "inherits")
        assert inherits["status"]["deadLetterSinkUri"] == broker_dls.url
        await stack.send("/ns1/default", event("x"))
        await broker_dls.wait_for(1)
        await trigger_dls.wait_for(1)
        await failing.settle()
        # inherits: 1 + 1 retry; own: a single attempt.
        assert len(failing.received) == 3
    finally:
        for r in (failing, broker_dls, trigger_dls):
            await r.stop()


async def test_a_broker_without_delivery_gets_knatives_default_retries(stack: Stack) -> None:
    await stack.apply(BROKER)
    broker = await stack.get("broker", "ns1", "default")
    assert broker["spec"]["delivery"] == {"retry": 10, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S"}
    expected_class = {"memory": "MTChannelBasedBroker", "kafka": "Kafka", "nats": "NatsJetStreamBroker"}
    annotations = broker["metadata"]["annotations"]
    assert annotations["eventing.knative.dev/broker.class"] == expected_class[stack.nerve.settings.backend]


async def test_a_200_reply_goes_back_into_the_broker_and_a_202_never_does(stack: Stack) -> None:
    def answer(i: int, e: object) -> Answer:
        if getattr(e, "id", "") == "ask":
            return Answer(
                200,
                {
                    "ce-specversion": "1.0",
                    "ce-id": "reply-1",
                    "ce-source": "/responder",
                    "ce-type": "answer",
                    "Content-Type": "text/plain",
                },
                b"42",
            )
        return Answer(202, {"ce-specversion": "1.0", "ce-id": "not-a-reply", "ce-source": "/r", "ce-type": "answer"})

    responder = await _started(answer)
    answers = await _started()
    try:
        await stack.apply(
            BROKER,
            trigger(responder.url, "asks", filters='{"type": "question"}'),
            trigger(answers.url, "answers", filters='{"type": "answer"}'),
        )
        await stack.send("/ns1/default", event("ask", type_="question"))
        await stack.send("/ns1/default", event("other", type_="question"))
        [reply] = await answers.wait_for(1)
        await answers.settle()
        assert [e.id for e in answers.events] == ["reply-1"]
        assert reply.data == b"42"
        assert "knativearrivaltime" in reply.attributes
        assert "knativebrokerttl" not in reply.attributes
        assert responder.received[0].headers.get("Prefer") == "reply"
    finally:
        await responder.stop()
        await answers.stop()


async def test_a_reply_loop_stops_when_the_ttl_is_spent(stack: Stack) -> None:
    echo = await _started(
        lambda i, e: Answer(200, {"ce-specversion": "1.0", "ce-id": f"r{i}", "ce-source": "/echo", "ce-type": "loop"})
    )
    try:
        await stack.apply(BROKER, trigger(echo.url, "loop", filters='{"type": "loop"}'))
        await stack.send("/ns1/default", event("start", type_="loop"))
        await echo.wait_for(255, timeout=60)
        await echo.settle(0.5)
        # The original plus 254 generations of replies, as Knative's MAX_TTL of 255 allows.
        assert len(echo.received) == 255
    finally:
        await echo.stop()


async def test_pass_through_headers_namespace_and_prefer_reach_the_subscriber(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    await stack.send(
        "/ns1/default",
        event(1),
        headers={
            "knative-hello": "world",
            "X-Request-Id": "req-7",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "X-Private": "no",
        },
    )
    await receiver.wait_for(1)
    headers = {k.lower(): v for k, v in receiver.received[0].headers.items()}
    assert headers["knative-hello"] == "world"
    assert headers["x-request-id"] == "req-7"
    assert headers["traceparent"].startswith("00-0af7651916cd43dd")
    assert headers["kn-namespace"] == "ns1"
    assert headers["prefer"] == "reply"
    assert "x-private" not in headers


async def test_delivery_format_json_sends_structured_mode(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url, delivery="  delivery: {format: json}"))
    await stack.send("/ns1/default", event(1, data=b'{"a": 1}'))
    await receiver.wait_for(1)
    got = receiver.received[0]
    assert got.headers["Content-Type"] == "application/cloudevents+json"
    assert json.loads(got.body)["data"] == {"a": 1}


async def test_36kib_events_reach_each_matching_trigger_exactly_once(stack: Stack) -> None:
    matching = [await _started() for _ in range(2)]
    other = await _started()
    try:
        await stack.apply(
            BROKER,
            *(trigger(r.url, f"big{i}", filters='{"type": "big"}') for i, r in enumerate(matching)),
            trigger(other.url, "small", filters='{"type": "small"}'),
        )
        payload = json.dumps({"blob": "x" * (36 * 1024)}).encode()
        for i in range(40):
            assert await stack.send("/ns1/default", event(i, type_="big", data=payload)) == 202
        for r in matching:
            await r.wait_for(40)
        for r in (*matching, other):
            await r.settle()
        for r in matching:
            assert sorted(r.ids, key=int) == [str(i) for i in range(40)]
            assert all(e.data == payload for e in r.events)
        assert other.received == []
    finally:
        for r in (*matching, other):
            await r.stop()


async def test_retry_after_is_honoured_whatever_its_header_case(stack: Stack) -> None:
    # The back-off alone would retry after 10 ms; the subscriber asks for 1 s with a lower-case header.
    busy = await _started(lambda i, e: Answer(429, {"retry-after": "1"}) if i == 0 else Answer(202))
    try:
        await stack.apply(BROKER, trigger(busy.url, delivery=delivery(retry=1, delay="PT0.01S")))
        await stack.send("/ns1/default", event("later"))
        await busy.wait_for(2, timeout=10)
        assert busy.received[1].at - busy.received[0].at >= 0.9
    finally:
        await busy.stop()
