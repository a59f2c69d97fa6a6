"""Dispatcher settings, parsed once at the edge (`python -m dispatcher` or `nerve up`, from these definitions)."""

from __future__ import annotations

from dataclasses import dataclass

from core.hops import DEFAULT_MAX_TTL
from core.settings import setting


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    max_inflight: int = setting(100, "--max-inflight", "NERVE_MAX_INFLIGHT",
                                "Deliveries one Trigger makes at once (unordered); bounds memory and subscriber load.",
                                minimum=1)
    default_timeout_s: float = 30.0
    """Per-attempt timeout when a delivery sets none."""
    drain_timeout_s: float = 10.0
    """On a contract change or shutdown, how long in-flight deliveries may finish before they are
    abandoned unacked (durable backends deliver them again)."""
    max_ttl: int = DEFAULT_MAX_TTL
    max_connections_per_host: int = setting(
        100, "--max-connections-per-host", "NERVE_MAX_CONNECTIONS_PER_HOST",
        "HTTP connections open at once to one destination (host and port); each destination has its own, "
        "so a slow subscriber delays only its own deliveries.", minimum=1)
    max_reply_bytes: int = 4 * 1024 * 1024
    workers: int = setting(0, "--workers", "NERVE_WORKERS",
                           "Dispatcher processes, one core each, sharing --port (SO_REUSEPORT) and each "
                           "Trigger's consumer group, so Kafka spreads the partitions over them. 0: one.",
                           minimum=0)
    shared_reader: bool = setting(
        True, "--shared-reader", "NERVE_SHARED_READER",
        "Read each Broker's or channel's topic once per dispatcher process for all its Triggers and "
        "Subscriptions, each keeping its own consumer group's offsets (memory and Kafka; NATS reads per "
        "Trigger). Off: every Trigger reads the whole topic through its own consumer.")
    fanout_backlog: int = setting(
        1000, "--fanout-backlog", "NERVE_FANOUT_BACKLOG",
        "Events one Trigger may have waiting for delivery from the shared reader. A Trigger past it (a slow "
        "or failing subscriber) leaves to read on alone from its own committed position (Kafka) and rejoins "
        "once caught up, so it holds no other Trigger back; Triggers all behind together stay, up to twice it.",
        minimum=1)
