"""Knative status conditions: a living condition set whose `Ready` is True only when all are True."""

from __future__ import annotations

from typing import Any

from core.hops import now_rfc3339


def cond(type_: str, status: bool | None, reason: str = "", message: str = "") -> dict[str, Any]:
    text = "Unknown" if status is None else ("True" if status else "False")
    out: dict[str, Any] = {"type": type_, "status": text}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def with_ready(
    conditions: list[dict[str, Any]], old: list[dict[str, Any]] | None, now: str | None = None
) -> list[dict[str, Any]]:
    """Add the summary `Ready` condition and keep lastTransitionTime where a status did not change.

    `now` stamps the conditions that did change (the clock is a parameter so builders stay pure).
    """
    failing = next((c for c in conditions if c["status"] == "False"), None)
    unknown = next((c for c in conditions if c["status"] == "Unknown"), None)
    if failing is not None:
        ready = cond("Ready", False, failing.get("reason", ""), failing.get("message", ""))
    elif unknown is not None:
        ready = cond("Ready", None, unknown.get("reason", ""), unknown.get("message", ""))
    else:
        ready = cond("Ready", True)
    previous = {c["type"]: c for c in old or []}
    now = now or now_rfc3339()
    result = []
    for c in [ready, *conditions]:
        before = previous.get(c["type"])
        c["lastTransitionTime"] = (
            before["lastTransitionTime"] if before and before.get("status") == c["status"] else now
        )
        result.append(c)
    return sorted(result, key=lambda c: c["type"])


def ready_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == "Ready":
            return dict(c)
    return None


def is_ready(obj: dict[str, Any]) -> bool:
    ready = ready_of(obj)
    return ready is not None and ready.get("status") == "True"
