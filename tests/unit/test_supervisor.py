"""A supervised part that fails is restarted with capped back-off, reported down, and counted."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from core.supervisor import Health, Supervisor


def _restarts(part: str) -> float:
    return REGISTRY.get_sample_value("nerve_supervised_restarts_total", {"part": part}) or 0.0


async def test_a_failing_part_is_restarted_with_doubling_capped_back_off_and_reported_until_ok() -> None:
    health = Health()
    waits: list[float] = []
    runs = 0
    done = asyncio.Event()
    supervisor: Supervisor

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs <= 4:
            raise RuntimeError(f"boom {runs}")
        assert health.down() == {"unit/flaky": "RuntimeError: boom 4"}
        supervisor.ok()
        done.set()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    before = _restarts("unit/flaky")
    supervisor = Supervisor("unit/flaky", body, health=health, initial_s=1.0, max_s=3.0, sleep=sleep)
    supervisor.start()
    await asyncio.wait_for(done.wait(), 5)
    await supervisor.stop()
    assert waits == [1.0, 2.0, 3.0, 3.0]
    assert health.down() == {}
    assert _restarts("unit/flaky") - before == 4


async def test_ok_resets_the_back_off() -> None:
    health = Health()
    waits: list[float] = []
    runs = 0
    done = asyncio.Event()
    supervisor: Supervisor

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            supervisor.ok()  # it ran again; its next failure starts the back-off from the start
        if runs <= 3:
            raise RuntimeError("again")
        done.set()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    supervisor = Supervisor("unit/reset", body, health=health, initial_s=1.0, max_s=30.0, sleep=sleep)
    supervisor.start()
    await asyncio.wait_for(done.wait(), 5)
    await supervisor.stop()
    assert waits == [1.0, 1.0, 1.0]


async def test_stopping_a_part_that_is_down_clears_it() -> None:
    health = Health()

    async def body() -> None:
        raise ValueError("never works")

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(3600)

    supervisor = Supervisor("unit/dead", body, health=health, sleep=sleep)
    supervisor.start()
    for _ in range(100):
        if health.down():
            break
        await asyncio.sleep(0)
    assert health.down() == {"unit/dead": "ValueError: never works"}
    await supervisor.stop()
    assert health.down() == {}
