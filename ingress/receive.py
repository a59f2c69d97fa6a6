"""The pure part of the receive path: stamp the events and publish them; no HTTP in here.

Every event of a request is stamped before any is published, so a TTL refusal stores nothing. A batch
goes whole to a backend that can store it atomically (memory: a 503 stored none of it); elsewhere its
events are published concurrently. The caller answers 202 only when all are stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from channels.base import AtomicBatch, Backend
from core.contract import Resource
from core.events import Event
from ingress.routes import Stamp


async def receive(
    events: Sequence[Event], resource: Resource, channel: Backend, *, stamp: Stamp | None, max_ttl: int
) -> None:
    """`stamp` is what the resource's kind does to an entering event (its route's hook), if anything."""
    if stamp is not None:
        for event in events:
            stamp(event, max_ttl)
    if len(events) == 1:
        await channel.publish(resource.topic, events[0])
    elif isinstance(channel, AtomicBatch):
        await channel.publish_all(resource.topic, events)
    else:
        await asyncio.gather(*(channel.publish(resource.topic, event) for event in events))
