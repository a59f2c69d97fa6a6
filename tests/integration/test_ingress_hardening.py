"""Issue 9 at the ingress: what fuzzing and abuse broke, through the HTTP ingress as a producer meets it.

Label cardinality and label safety (/metrics), trailing newlines in names, a producer-raised TTL, the
former 500s, and what a malformed request leaves in the log.
"""

from __future__ import annotations

import asyncio
import json
import time

from core.events import Event
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event

NS = "h9"
BROKER = f"""
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: hardened, namespace: {NS}}}
"""
PATH = f"/{NS}/hardened"
BINARY = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
          "Content-Type": "application/json"}
STRUCTURED = {"Content-Type": "application/cloudevents+json"}


def trigger(url: str, name: str = "all", **filters: str) -> str:
    return f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}, namespace: {NS}}}
spec:
  broker: hardened
  filter: {{attributes: {json.dumps(filters)}}}
  subscriber: {{uri: "{url}"}}
"""


async def _post(stack: Stack, path: str, headers: dict[str, str], body: bytes = b"{}") -> tuple[int, dict[str, str]]:
    async with stack.session.post(stack.ingress + path, headers=headers, data=body) as r:
        raw = await r.read()
        return r.status, json.loads(raw) if raw else {}


async def _metrics(stack: Stack) -> tuple[int, str]:
    async with stack.session.get(stack.api + "/metrics") as r:
        return r.status, await r.text()


def _ce(id_: str, **extra: object) -> bytes:
    return json.dumps({"specversion": "1.0", "id": id_, "source": "/s", "type": "t", **extra}).encode()


# ----------------------------------------------------------------------------------- 7. trailing newlines


async def test_names_and_values_ending_in_a_newline_are_400_not_202(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    status, answer = await _post(stack, PATH, STRUCTURED, _ce("n1", **{"myext\n": "v"}))
    assert (status, answer.get("field")) == (400, "myext\n"), answer
    assert "attribute name" in answer["reason"]
    status, answer = await _post(stack, PATH, STRUCTURED, _ce("n2", datacontenttype="application/json\n"))
    assert (status, answer.get("field")) == (400, "datacontenttype"), answer
    status, answer = await _post(stack, PATH, STRUCTURED, _ce("n3", time="2026-01-01T00:00:00Z\n"))
    assert (status, answer.get("field")) == (400, "time"), answer
    assert await stack.send(PATH, event("ok")) == 202
    await receiver.wait_for(1)
    await receiver.settle()
    assert receiver.ids == ["ok"]


# ----------------------------------------------------------------------------------- 8. producer TTL


async def test_a_producer_ttl_above_the_maximum_is_capped(stack: Stack) -> None:
    def echo(i: int, _: Event) -> Answer:
        return Answer(200, {"ce-specversion": "1.0", "ce-id": f"r{i}", "ce-source": "/echo", "ce-type": "loop",
                            "Content-Type": "application/json"}, b"{}")

    echoer = Receiver(echo)
    await echoer.start()
    try:
        await stack.apply(BROKER, trigger(echoer.url, name="loop", type="loop"))
        status, _ = await _post(stack, PATH, {**BINARY, "ce-type": "loop", "ce-knativebrokerttl": "100000"})
        assert status == 202
        deadline = time.monotonic() + 60
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.5:
            assert time.monotonic() < deadline, f"still looping after {len(echoer.received)} deliveries"
            # Unbounded, the loop passed 255 deliveries within seconds (53,528 in 30 s).
            assert len(echoer.received) <= 255
            if len(echoer.received) != seen:
                seen, quiet_since = len(echoer.received), time.monotonic()
            await asyncio.sleep(0.1)
        assert 250 <= len(echoer.received) <= 255
    finally:
        await echoer.stop()
