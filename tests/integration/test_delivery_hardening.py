"""Delivery under abuse and slowness (issue 9): redirects, per-destination connection shares.

Every subscriber here is a real HTTP server on loopback, behind the embedded stack on the memory backend.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.receiver import Answer, Receiver
from tests.support.stack import event, running_stack

BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: ns1}
"""


def trigger(url: str, name: str = "t1", *, dls: str = "") -> str:
    lines = [
        "apiVersion: eventing.knative.dev/v1",
        "kind: Trigger",
        f"metadata: {{name: {name}, namespace: ns1}}",
        "spec:",
        "  broker: default",
        f'  subscriber: {{uri: "{url}"}}',
    ]
    if dls:
        lines += ["  delivery:", "    retry: 2", "    backoffDelay: PT0.01S", f'    deadLetterSink: {{uri: "{dls}"}}']
    return "\n".join(lines) + "\n"


async def _started(script: object = None) -> Receiver:
    r = Receiver(script)  # type: ignore[arg-type]
    await r.start()
    return r


async def test_a_redirecting_subscriber_is_not_followed_and_the_event_is_dead_lettered(tmp_path: Path) -> None:
    elsewhere = await _started()
    redirecting = await _started(lambda i, e: Answer(307, headers={"Location": elsewhere.url}))
    dls = await _started()
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply(BROKER, trigger(redirecting.url, dls=dls.url))
            assert await stack.send("/ns1/default", event("e1")) == 202
            [dead] = await dls.wait_for(1)
            await redirecting.settle()
            # A 3xx is a failed attempt, not retried: one POST, straight to the dead-letter sink.
            assert redirecting.ids == ["e1"]
            assert dead.id == "e1"
            assert dead.attributes["knativeerrorcode"] == "307"
            assert dead.attributes["knativeerrordest"] == redirecting.url
            assert elsewhere.received == []
    finally:
        for r in (elsewhere, redirecting, dls):
            await r.stop()


async def test_a_redirecting_dead_letter_sink_is_not_followed_either(tmp_path: Path) -> None:
    elsewhere = await _started()
    failing = await _started(lambda i, e: Answer(400))
    dls = await _started(lambda i, e: Answer(308, headers={"Location": elsewhere.url}))
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply(BROKER, trigger(failing.url, dls=dls.url))
            assert await stack.send("/ns1/default", event("e2")) == 202
            await dls.wait_for(1)
            await dls.settle()
            assert dls.ids == ["e2"]
            assert elsewhere.received == []
    finally:
        for r in (elsewhere, failing, dls):
            await r.stop()




def filtered(url: str, name: str, type_: str) -> str:
    return f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}, namespace: ns1}}
spec:
  broker: default
  filter: {{attributes: {{type: {type_}}}}}
  subscriber: {{uri: "{url}"}}
"""


async def test_slow_subscribers_do_not_hold_up_a_fast_one(tmp_path: Path) -> None:
    slow = await _started(lambda i, e: Answer(202, delay_s=2.0))
    fast = await _started()
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply(BROKER, *(filtered(slow.url, f"slow{n}", "slow") for n in range(5)),
                              filtered(fast.url, "fast", "fast"))
            # 5 Triggers x their window of 100: 500 deliveries held 2 s each by the slow subscriber.
            for i in range(200):
                assert await stack.send("/ns1/default", event(f"s{i}", type_="slow")) == 202
            await slow.wait_for(300)
            await asyncio.sleep(0.3)  # in the middle of a wave: every shared connection is held
            sent = asyncio.get_running_loop().time()
            assert await stack.send("/ns1/default", event("f1", type_="fast")) == 202
            await fast.wait_for(1, timeout=5)
            waited = fast.received[0].at - sent
            assert waited < 0.5, f"the fast Trigger's event took {waited:.2f} s"
    finally:
        await slow.stop()
        await fast.stop()
