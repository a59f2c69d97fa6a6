"""The contract watch survives a listener that raises: it keeps following the file and says it is down."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.contract import Contract, write_atomically
from core.contract_watch import PART, ContractWatcher
from core.supervisor import HEALTH


async def _until(check: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_a_listener_that_raises_once_gets_the_contract_again_and_the_others_only_once(tmp_path: Path) -> None:
    path = tmp_path / "contract.json"
    write_atomically(path, Contract(generation=1))
    flaky_calls: list[int] = []
    steady_calls: list[int] = []
    down_seen: list[dict[str, str]] = []

    async def flaky(contract: Contract) -> None:
        flaky_calls.append(contract.generation)
        if len(flaky_calls) == 1:
            raise RuntimeError("listener bug")

    async def steady(contract: Contract) -> None:
        steady_calls.append(contract.generation)

    watcher = ContractWatcher(path, [flaky, steady], interval_s=0.01, restart_initial_s=0.2)
    await watcher.start()
    try:
        down_seen.append(HEALTH.down())
        await _until(lambda: flaky_calls == [1, 1])
        await _until(lambda: PART not in HEALTH.down())
        assert watcher.generation == 1
        write_atomically(path, Contract(generation=2))
        await _until(lambda: watcher.generation == 2)
    finally:
        await watcher.stop()
    assert PART in down_seen[0]
    assert "listener bug" in down_seen[0][PART]
    assert steady_calls == [1, 2]
    assert flaky_calls == [1, 1, 2]


async def test_a_listener_failing_in_the_loop_does_not_stop_the_watch(tmp_path: Path) -> None:
    path = tmp_path / "contract.json"
    write_atomically(path, Contract(generation=1))
    seen: list[int] = []
    failures = 0

    async def listener(contract: Contract) -> None:
        nonlocal failures
        if contract.generation == 2 and failures < 2:
            failures += 1
            raise KeyError("missing")
        seen.append(contract.generation)

    watcher = ContractWatcher(path, [listener], interval_s=0.01, restart_initial_s=0.05)
    await watcher.start()
    try:
        write_atomically(path, Contract(generation=2))
        await _until(lambda: PART in HEALTH.down())
        await _until(lambda: seen == [1, 2])
        await _until(lambda: PART not in HEALTH.down())
        write_atomically(path, Contract(generation=3))
        await _until(lambda: seen == [1, 2, 3])
    finally:
        await watcher.stop()
