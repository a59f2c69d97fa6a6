"""Fixtures shared by every test folder; the backend servers live in tests/fixtures/."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.launchers import SERVER_FIXTURES, running
from tests.support.receiver import Receiver

pytest_plugins = ["tests.fixtures.servers"]


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
