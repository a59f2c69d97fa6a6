"""Storage backends by name, and the pool that shares one connection per backend and cluster.

Settings pick the name; the composition root passes the pool into ingress, dispatcher and control.
Kafka and NATS modules are imported on first use so the embedded memory mode never loads their clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from channels.base import Backend
from channels.memory import MemoryBackend, MemorySettings
from core.backend_security import BackendSecurity, KafkaSecurity, NatsSecurity
from core.errors import BackendError

BACKENDS = ("memory", "kafka", "nats")


@dataclass(frozen=True, slots=True)
class BackendSettings:
    memory: MemorySettings = field(default_factory=MemorySettings)
    kafka_bootstrap_servers: str = ""
    """Default Kafka cluster for resources whose config names none."""
    nats_url: str = ""
    """Default NATS server for resources whose config names none."""
    one_process: bool = True
    """Whether ingress, dispatcher and control share this process (`nerve up`). Only then can the memory
    backend serve: in a separate service it would hold events no other process ever reads."""


MEMORY_NEEDS_ONE_PROCESS = (
    "the memory backend keeps events inside one process, so it works only under `nerve up`; this is a "
    "separate service, which no other part could reach it from: give the resource Kafka or NATS (Broker class "
    "Kafka or NatsJetStreamBroker, a KafkaChannel or NatsJetStreamChannel), or run `nerve up`")


def _build(backend: str, connection: str, settings: BackendSettings, security: BackendSecurity | None) -> Backend:
    if backend == "memory":
        if not settings.one_process:
            raise BackendError(MEMORY_NEEDS_ONE_PROCESS)
        return MemoryBackend(settings.memory)
    if backend == "kafka":
        from channels.kafka import KafkaBackend, KafkaSettings

        servers = connection or settings.kafka_bootstrap_servers
        if not servers:
            raise BackendError("no Kafka bootstrap servers configured (--kafka-bootstrap or spec.config)")
        if security is not None and not isinstance(security, KafkaSecurity):
            raise BackendError("a Kafka backend was given NATS security settings")
        return KafkaBackend(KafkaSettings(bootstrap_servers=servers, security=security))
    if backend == "nats":
        from channels.nats import NatsBackend, NatsSettings

        url = connection or settings.nats_url
        if not url:
            raise BackendError("no NATS server configured (--nats-url or spec.config)")
        if security is not None and not isinstance(security, NatsSecurity):
            raise BackendError("a NATS backend was given Kafka security settings")
        return NatsBackend(NatsSettings(url=url, security=security))
    raise BackendError(f"unknown channel backend {backend!r}; expected one of {', '.join(BACKENDS)}")


PoolKey = tuple[str, str, BackendSecurity | None]


class BackendPool:
    """One started Backend per (backend, connection, security), shared by every service of the process.

    Security is part of the key: two Brokers on one cluster with different credentials get clients of
    their own, so one never publishes with the other's rights, and a changed Secret makes new clients."""

    def __init__(self, settings: BackendSettings | None = None) -> None:
        self.settings = settings or BackendSettings()
        self._channels: dict[PoolKey, Backend] = {}

    async def get(self, backend: str, connection: str = "", security: BackendSecurity | None = None) -> Backend:
        key: PoolKey = (backend, "", None) if backend == "memory" else (backend, connection, security)
        channel = self._channels.get(key)
        if channel is None:
            channel = _build(backend, connection, self.settings, security)
            await channel.start()
            # Another coroutine may have built the same channel while this one awaited start().
            existing = self._channels.setdefault(key, channel)
            if existing is not channel:
                await channel.stop()
                channel = existing
        return channel

    async def stop(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.stop()


def service_pool(kafka_bootstrap_servers: str, nats_url: str) -> BackendPool:
    """The pool of a separate service (`nerve control|ingress|dispatcher|sources`): the default clusters,
    and no memory backend, which only `nerve up` can share between its parts."""
    return BackendPool(BackendSettings(kafka_bootstrap_servers=kafka_bootstrap_servers, nats_url=nats_url,
                                       one_process=False))
