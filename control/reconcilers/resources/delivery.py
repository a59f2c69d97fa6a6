"""DeliverySpec -> the contract's EgressConfig, and the DeadLetterSinkResolved condition."""

from __future__ import annotations

from typing import Any

from control.conditions import cond
from control.resolver import Resolver, Unresolvable
from core.contract import EgressConfig
from core.durations import parse_ms

_UNCONFIGURED = EgressConfig()
"""What no delivery and no dead-letter sink make: one (frozen, all scalars) shared by every such egress."""


def egress_config(delivery: dict[str, Any] | None, dead_letter: str | None,
                  dead_letter_ca_certs: str | None = None) -> EgressConfig:
    if not delivery and dead_letter is None:
        return _UNCONFIGURED
    delivery = delivery or {}

    def ms(key: str) -> int | None:
        value = delivery.get(key)
        return None if value is None else parse_ms(value)

    return EgressConfig(
        retry=int(delivery.get("retry") or 0),
        backoff_policy="linear" if delivery.get("backoffPolicy") == "linear" else "exponential",
        backoff_delay_ms=ms("backoffDelay") or 0,
        timeout_ms=ms("timeout"),
        dead_letter=dead_letter,
        retry_after_max_ms=ms("retryAfterMax"),
        dead_letter_ca_certs=dead_letter_ca_certs if dead_letter else None,
    )


def dead_letter_condition(
    dls: dict[str, Any] | None, namespace: str, resolver: Resolver, status: dict[str, Any]
) -> dict[str, Any]:
    """The condition, and `status.deadLetterSinkUri` (and `deadLetterSinkCACerts`) when the sink resolves."""
    if dls is None:
        return cond("DeadLetterSinkResolved", True, "DeadLetterSinkNotConfigured", "No dead letter sink is configured.")
    try:
        resolved = resolver.resolve_address(dls, namespace)
    except Unresolvable as exc:
        return cond("DeadLetterSinkResolved", False, "Unable to get the dead letter sink's URI", exc.message)
    status["deadLetterSinkUri"] = resolved.url
    if resolved.ca_certs:
        status["deadLetterSinkCACerts"] = resolved.ca_certs
    return cond("DeadLetterSinkResolved", True)
