"""The pure part of the receive path: stamp the events and publish them; no HTTP in here.

Every event of a request is stamped before any is published, so a TTL refusal stores nothing. The
events of a batch are published concurrently; the caller answers 202 only when all are stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from channels.base import Backend
from core.contract import Resource
from core.events import Event
from core.hops import enter_broker


async def receive(events: Sequence[Event], resource: Resource, channel: Backend, *, max_ttl: int) -> None:
    for event in events:
        if resource.kind == "Broker":
            enter_broker(event, max_ttl=max_ttl)
    if len(events) == 1:
        await channel.publish(resource.topic, events[0])
    else:
        await asyncio.gather(*(channel.publish(resource.topic, event) for event in events))
