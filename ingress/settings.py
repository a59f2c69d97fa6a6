"""Ingress settings, parsed once at the edge."""

from __future__ import annotations

from dataclasses import dataclass

from core.hops import DEFAULT_MAX_TTL


@dataclass(frozen=True, slots=True)
class IngressSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 4 * 1024 * 1024
    """Larger requests get 413."""
    max_ttl: int = DEFAULT_MAX_TTL
    """knativebrokerttl given to events that arrive without one (Knative's MAX_TTL)."""
