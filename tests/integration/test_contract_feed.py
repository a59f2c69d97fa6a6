"""The push-style contract: a data-plane service long-polls control's API (`--contract-from control`).

Through the real control API of an embedded Nerve: the contract needs the API token; a poll for a
generation the service already has is held and answers the moment control publishes the next one; a
follower (core/contract_watch.ControlFeed) applies each generation as it comes and, when control refuses
it, says so on /readyz instead of failing silently.
"""

from __future__ import annotations

import asyncio
import gzip
import time

import aiohttp
import pytest

from core.contract import Contract
from core.contract_watch import PART, ContractWatcher, ControlFeed
from core.supervisor import HEALTH
from tests.support import manifests
from tests.support.stack import Stack

pytestmark = pytest.mark.timeout(60)


async def _get(url: str, token: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.read()


async def test_a_held_poll_answers_when_control_publishes_the_next_generation(stack: Stack) -> None:
    url = f"{stack.api}/api/v1/contract"
    status, _ = await _get(url)
    assert status == 401
    status, body = await _get(url, stack.token)
    assert status == 200
    generation = Contract.loads(body).generation
    started = time.monotonic()
    status, _ = await _get(f"{url}?after={generation}&timeoutSeconds=1", stack.token)
    assert (status, round(time.monotonic() - started)) == (304, 1)
    held = asyncio.create_task(_get(f"{url}?after={generation}&timeoutSeconds=30", stack.token))
    await asyncio.sleep(0.3)
    assert not held.done()
    started = time.monotonic()
    await stack.apply(manifests.broker("b", "feed"))
    status, body = await asyncio.wait_for(held, 10)
    fresh = Contract.loads(body)
    assert status == 200 and fresh.generation > generation
    assert time.monotonic() - started < 5
    assert "/feed/b" in fresh.by_path()
    status, body = await _get(f"{url}?timeoutSeconds=99", stack.token)
    assert status == 400 and b"timeoutSeconds" in body


async def test_a_follower_applies_each_generation_and_reports_a_refusal(stack: Stack) -> None:
    seen: list[Contract] = []

    async def listener(contract: Contract) -> None:
        seen.append(contract)

    watcher = ContractWatcher(ControlFeed(stack.api, stack.token, wait_s=5), [listener], restart_initial_s=0.1)
    await watcher.start()
    try:
        assert seen and seen[-1].generation == watcher.generation
        await stack.apply(manifests.broker("b2", "feed"))
        deadline = time.monotonic() + 10
        while not any("/feed/b2" in c.by_path() for c in seen):
            assert time.monotonic() < deadline, "the follower never saw the Broker's generation"
            await asyncio.sleep(0.05)
    finally:
        await watcher.stop()
    refused = ContractWatcher(ControlFeed(stack.api, "wrong-token", wait_s=5), [listener], restart_initial_s=5)
    await refused.start()
    try:
        assert "answered 401" in HEALTH.down()[PART]
    finally:
        await refused.stop()


async def test_a_contract_past_a_configmaps_1_mib_is_served_whole_and_gzipped_when_asked(stack: Stack) -> None:
    # Knative's contract lives in a ConfigMap (1 MiB at most); Nerve's has no ceiling.
    triggers = [manifests.trigger(f"t-{i:04d}", f"http://127.0.0.1:9/t/{i}", namespace="big", broker="b",
                                  filter={"attributes": {"type": f"bench.{i}"}}) for i in range(1500)]
    await stack.apply(manifests.broker("b", "big"), *triggers)
    url = f"{stack.api}/api/v1/contract"
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(url, headers={**headers, "Accept-Encoding": "identity"}) as response:
            assert response.headers.get("Content-Encoding") is None
            plain = await response.read()
        async with session.get(url, headers={**headers, "Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            zipped = await response.read()
    assert len(plain) > 2**20 and len(zipped) < len(plain) // 5
    assert gzip.decompress(zipped) == plain
    big = Contract.loads(plain).by_path()["/big/b"]
    assert sorted(e.reference.name for e in big.egresses) == [f"t-{i:04d}" for i in range(1500)]
    assert {e.filter_attributes["type"] for e in big.egresses} == {f"bench.{i}" for i in range(1500)}
    # The follower (aiohttp asks for gzip by default) reads the same contract.
    feed = ControlFeed(stack.api, stack.token, wait_s=1)
    try:
        followed = await feed.changed(-1)
    finally:
        await feed.close()
    assert followed is not None and followed.by_path()["/big/b"] == big
