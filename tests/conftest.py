"""Fixtures shared by every test folder; the backend servers live in tests/fixtures/."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from tests.support.launchers import SERVER_FIXTURES, running
from tests.support.receiver import Receiver

pytest_plugins = ["tests.fixtures.servers"]


_DEAD_LOOP_LEFTOVERS = ("loop is closed", "unclosed transport <", "unclosed <socket.socket")


def _from_a_dead_loop(unraisable: sys.UnraisableHookArgs) -> bool:
    """An asyncio stream, transport or socket finalized while no event loop runs in this thread: it
    outlived the (closed) loop of some earlier test. The garbage collector picks the moment, so pytest
    would pin it on whichever test happens to run then (twice in CI: a synchronous argument-parsing test
    of tests/integration/test_security.py); which test leaked it cannot be told from here. Finalized
    while a loop runs, it still fails the test that is running, as before."""
    if asyncio._get_running_loop() is not None or not isinstance(unraisable.exc_value, ResourceWarning):
        return False
    return str(unraisable.exc_value).startswith(_DEAD_LOOP_LEFTOVERS)


_LEAKED: list[str] = []
"""What the hook below lets pass, with the test during which it was finalized: the run's summary lists it
(a line on that test's stderr would be shown only were it to fail, and it is not the one that leaked)."""


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    pytests_hook = sys.unraisablehook  # installed by pytest's unraisableexception plugin's configure

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if _from_a_dead_loop(unraisable):
            during = running.item.nodeid if running.item is not None else "between tests"
            _LEAKED.append(f"{unraisable.exc_value} (finalized during {during})")
            return
        pytests_hook(unraisable)

    sys.unraisablehook = hook


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LEAKED:
        terminalreporter.section("asyncio leftovers finalized after their event loop closed")
        for line in _LEAKED:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes `kafka_bootstrap` or `nats_url` by name (itself or through its fixtures) carries
    the `kafka` or `nats` marker, so `-m "not kafka and not nats"` deselects it."""
    for item in items:
        for fixture, marker in SERVER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    running.item = item


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    running.item = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP subscriber on loopback that records what it receives."""
    r = Receiver()
    await r.start()
    yield r
    await r.stop()
