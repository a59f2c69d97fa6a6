"""Settings of the sources service, parsed once at the edge."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourcesSettings:
    max_inflight: int = 100
    """Events one source (per topic, for a KafkaSource) delivers concurrently in unordered mode."""
    default_timeout_s: float = 30.0
    """Per-attempt timeout when a delivery sets none."""
    drain_timeout_s: float = 10.0
    """On a contract change or shutdown, how long in-flight deliveries may finish before they are
    abandoned unacked (Kafka delivers them again)."""
    max_connections: int = 256
    max_reply_bytes: int = 4 * 1024 * 1024
