"""One behaviour suite, every backend: `backend` (the seam alone) and `stack` (the whole broker) are
parametrized by backend name. With `stack`, Brokers that name no class and Channels that name no
channelTemplate run on that backend, so the same Knative YAML is exercised on memory, Kafka and NATS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channels.base import Backend
from channels.registry import BackendPool, BackendSettings
from tests.support.launchers import backend_params
from tests.support.stack import Stack, running_stack

BACKENDS = backend_params("memory", "kafka", "nats")
DEFAULT_CHANNEL_KIND = {"memory": "InMemoryChannel", "kafka": "KafkaChannel", "nats": "NatsJetStreamChannel"}


def _connection(request: pytest.FixtureRequest, backend: str) -> str:
    if backend == "kafka":
        return str(request.getfixturevalue("kafka_bootstrap"))
    if backend == "nats":
        return str(request.getfixturevalue("nats_url"))
    return ""


@pytest.fixture(params=BACKENDS)
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    backend: str = request.param
    connection = _connection(request, backend)
    # Kafka and NATS outlive a test: each test gets topics and groups of its own.
    unique = uuid.uuid4().hex[:8]
    async with running_stack(
        tmp_path, backend=backend, kafka_bootstrap=connection if backend == "kafka" else "",
        nats_url=connection if backend == "nats" else "",
        topic_template=f"t{unique}-{{namespace}}-{{name}}", consumer_group_template=f"g{unique}-{{namespace}}-{{name}}",
        default_channel_kind=DEFAULT_CHANNEL_KIND[backend], channel_topic_template=f"c{unique}-{{namespace}}-{{name}}",
        subscription_consumer_group_template=f"s{unique}-{{namespace}}-{{channel}}-{{uid}}",
    ) as s:
        yield s


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    name: str = request.param
    connection = _connection(request, name)
    pool = BackendPool(BackendSettings())
    try:
        yield await pool.get(name, connection)
    finally:
        await pool.stop()
