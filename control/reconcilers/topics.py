"""Making a Broker's or a channel's topic exist: what the backend answered, as a status outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from channels.base import TopicSpec
from channels.registry import BackendPool
from core.backend_security import BackendSecurity
from core.errors import BackendError

log = logging.getLogger("nerve.control")


@dataclass(frozen=True, slots=True)
class TopicOutcome:
    """What ensuring the topic answered: ready, or the condition's reason and message."""

    ready: bool
    reason: str = ""
    message: str = ""


async def ensure_topic(pool: BackendPool, owner: dict[str, Any], backend: str, connection: str,
                       topic: TopicSpec, security: BackendSecurity | None = None) -> TopicOutcome:
    """Create or reshape `topic` for `owner` (the finalizer that deletes it is on already)."""
    try:
        channel = await pool.get(backend, connection, security)
        await channel.ensure_topic(topic)
    except BackendError as exc:
        return TopicOutcome(False, "TopicNotReady", exc.reason)
    except Exception as exc:  # one broken backend must not fail the reconcile of everything else
        meta = owner["metadata"]
        log.exception("%s %s/%s: backend %s failed", owner.get("kind"), meta.get("namespace"), meta["name"], backend)
        return TopicOutcome(False, "BackendFailure", f"{type(exc).__name__}: {exc}")
    return TopicOutcome(True)
