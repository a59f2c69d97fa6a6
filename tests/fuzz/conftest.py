"""The fuzz suite's profiles and the stack it runs against.

`HYPOTHESIS_PROFILE=ci` (the default, what `make test` runs): a few thousand derandomized cases, well
under a minute. `HYPOTHESIS_PROFILE=long` (`make fuzz`): >= 100,000 ingress requests, with a table at the
end. The profiles are applied to the fuzz tests only (tests/unit keeps hypothesis' defaults).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from dispatcher.settings import DispatcherSettings
from tests.support import manifests
from tests.support.receiver import Receiver
from tests.support.stack import Stack, running_stack

_COMMON: dict[str, Any] = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "print_blob": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                              HealthCheck.large_base_example],
}
# Counts per test: (ingress requests, control-API requests).
PROFILES = {"ci": (1500, 400), "long": (100_000, 5_000)}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in PROFILES:
    PROFILE = "ci"
INGRESS_CASES, CONTROL_CASES = PROFILES[PROFILE]


def profile(max_examples: int) -> settings:
    return settings(max_examples=max_examples, **_COMMON)


class Harness:
    """A whole embedded Nerve on its own event loop; sync hypothesis tests run coroutines on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._exit = AsyncExitStack()
        self.stack: Stack
        self.receiver: Receiver

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    async def start(self, state_dir: Path, **overrides: Any) -> None:
        self.receiver = Receiver()
        await self.receiver.start()
        self._exit.push_async_callback(self.receiver.stop)
        self.stack = await self._exit.enter_async_context(running_stack(state_dir, **overrides))

    def close(self) -> None:
        self.run(self._exit.aclose())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


# Quick give-up on a failing delivery, so that an event Nerve cannot deliver shows as dropped within the
# run (the invariant is "delivered or counted as dropped", not "retried for minutes").
FAST_DELIVERY = {"retry": 1, "backoffPolicy": "linear", "backoffDelay": "PT0.05S", "timeout": "PT5S"}


@pytest.fixture(scope="module")
def ingress_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """Broker fuzz/default with one Trigger (no filter) to a real loopback receiver."""
    harness = Harness()
    harness.run(harness.start(tmp_path_factory.mktemp("fuzz-ingress"),
                              dispatcher=DispatcherSettings(drain_timeout_s=2.0)))
    harness.run(harness.stack.apply(
        manifests.broker("default", "fuzz"),
        manifests.trigger("all", harness.receiver.url, namespace="fuzz", delivery=FAST_DELIVERY)))
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope="module")
def control_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """A stack of its own for control-API fuzzing; Service refs resolve to a loopback port that refuses."""
    harness = Harness()
    harness.run(harness.start(tmp_path_factory.mktemp("fuzz-control"),
                              service_url_template="http://127.0.0.1:9/{namespace}/{name}"))
    try:
        yield harness
    finally:
        harness.close()
