"""Delivery under abuse and slowness (issue 9): redirects, per-destination connection shares.

Every subscriber here is a real HTTP server on loopback, behind the embedded stack on the memory backend.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support import manifests
from tests.support.manifests import BROKER
from tests.support.receiver import Answer, Receiver
from tests.support.stack import event, running_stack


def trigger(url: str, name: str = "t1", *, dls: str = "") -> dict[str, Any]:
    return manifests.trigger(name, url, **({"delivery": manifests.quick_dead_letter(dls)} if dls else {}))


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




def filtered(url: str, name: str, type_: str) -> dict[str, Any]:
    return manifests.trigger(name, url, filter={"attributes": {"type": type_}})


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
            assert waited < 0.25, f"the fast Trigger's event took {waited:.2f} s"
    finally:
        await slow.stop()
        await fast.stop()


class _Gate:
    """A subscriber that holds every request until opened: events stay held (unacked) by the backend."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def __call__(self, i: int, e: object) -> Answer:
        await self.open.wait()
        return Answer(202)


async def test_the_memory_backend_is_bounded_in_bytes(tmp_path: Path) -> None:
    from channels.memory import MemorySettings

    limit = 2 * 1024 * 1024
    gate = _Gate()
    held = await _started(gate)
    try:
        async with running_stack(tmp_path, memory=MemorySettings(memory_limit=limit)) as stack:
            await stack.apply(BROKER, trigger(held.url), trigger(held.url, "t2"))
            data = b"x" * 100_000
            statuses = [await stack.send("/ns1/default", event(i, data=data)) for i in range(60)]
            accepted = statuses.count(202)
            # 60 x 100 KB is 6 MB; two Triggers share each event, which counts once.
            assert 15 <= accepted <= limit // 100_000, statuses
            assert set(statuses[accepted:]) == {503}, statuses
            channel = await stack.nerve.pool.get("memory")
            assert channel.held_bytes <= limit  # type: ignore[attr-defined]
            gate.open.set()
            await held.wait_for(2 * accepted, timeout=30)
            await stack.nerve.dispatcher.stop()  # everything acked: nothing is held any more
            assert channel.held_bytes == 0  # type: ignore[attr-defined]
    finally:
        gate.open.set()
        await held.stop()


async def _post_batch(stack: object, ids: list[str]) -> int:
    import json

    body = json.dumps([{"specversion": "1.0", "id": i, "source": "/batch", "type": "dev.nerve.batch"} for i in ids])
    async with stack.session.post(  # type: ignore[attr-defined]
        stack.ingress + "/ns1/default",  # type: ignore[attr-defined]
        data=body, headers={"Content-Type": "application/cloudevents-batch+json"},
    ) as response:
        await response.read()
        return response.status


async def test_a_batch_refused_503_stored_none_of_its_events(tmp_path: Path) -> None:
    from channels.memory import MemorySettings

    gate = _Gate()
    held = await _started(gate)
    try:
        async with running_stack(tmp_path, memory=MemorySettings(capacity=8)) as stack:
            await stack.apply(BROKER, trigger(held.url))
            assert await _post_batch(stack, [f"a{i}" for i in range(3)]) == 202
            # 3 held, room for 5: a batch of 20 is refused whole, a batch of 5 still fits.
            assert await _post_batch(stack, [f"b{i}" for i in range(20)]) == 503
            assert await _post_batch(stack, [f"c{i}" for i in range(5)]) == 202
            gate.open.set()
            await held.wait_for(8)
            await held.settle()
            assert sorted(held.ids) == sorted([f"a{i}" for i in range(3)] + [f"c{i}" for i in range(5)])
    finally:
        gate.open.set()
        await held.stop()


async def test_a_full_trigger_refuses_its_broker_with_a_reason_naming_it(tmp_path: Path) -> None:
    """The documented choice (channels/memory.py): events are queued for every Trigger before filters
    run, so a full Trigger's queue refuses its Broker; other Brokers are unaffected."""
    from channels.memory import MemorySettings

    gate = _Gate()
    held = await _started(gate)
    fast = await _started()
    other = manifests.broker("other")
    try:
        async with running_stack(tmp_path, memory=MemorySettings(capacity=3)) as stack:
            await stack.apply(BROKER, other, trigger(held.url, "stuck"),
                              manifests.trigger("elsewhere", fast.url, broker="other"))
            for i in range(3):
                assert await stack.send("/ns1/default", event(i)) == 202
            async with stack.session.post(stack.ingress + "/ns1/default", json={}, headers={
                "ce-specversion": "1.0", "ce-id": "x", "ce-source": "/s", "ce-type": "t"}) as response:
                assert response.status == 503
                assert "stuck" in await response.text()
            for i in range(10):
                assert await stack.send("/ns1/other", event(f"o{i}")) == 202
            await fast.wait_for(10)
    finally:
        gate.open.set()
        await held.stop()
        await fast.stop()
