"""The control side of EventType auto-create in `nerve up`: the in-process `EventTypeRecorder`.

The data plane queues the EventTypes it saw (core/eventtypes.py); this writes those that do not exist yet
through the control service's own apply, so they are admitted, owned and reconciled like any other
(ownerReferences: they go with their Broker, channel, Trigger or Subscription).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from control.service import ControlService


class StoreRecorder:
    def __init__(self, service: ControlService) -> None:
        self._service = service

    async def record(self, eventtypes: Sequence[dict[str, Any]]) -> None:
        store = self._service.store
        missing = [et for et in eventtypes
                   if await store.get("EventType", et["metadata"]["namespace"], et["metadata"]["name"]) is None]
        if missing:
            await self._service.apply(missing)
