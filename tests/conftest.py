"""Fixtures shared by every test folder; the backend servers live in tests/fixtures/."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.receiver import Receiver

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.nats"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP subscriber on loopback that records what it receives."""
    r = Receiver()
    await r.start()
    yield r
    await r.stop()
