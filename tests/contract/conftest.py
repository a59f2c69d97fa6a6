"""One behaviour suite, every channel backend: the `channel` fixture is parametrized by backend name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channels.base import Channel
from channels.registry import ChannelPool, ChannelSettings

BACKENDS = ["memory", "kafka", "nats"]


@pytest.fixture(params=BACKENDS)
async def channel(request: pytest.FixtureRequest) -> AsyncIterator[Channel]:
    backend: str = request.param
    connection = ""
    if backend == "kafka":
        connection = request.getfixturevalue("kafka_bootstrap")
    elif backend == "nats":
        connection = request.getfixturevalue("nats_url")
    pool = ChannelPool(ChannelSettings())
    try:
        yield await pool.get(backend, connection)
    finally:
        await pool.stop()
