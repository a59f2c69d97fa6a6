"""The EventType reconciler: the registry's entries that sources register, and every entry's status.

It runs after every other kind in a pass, so a source's `status.ceAttributes` and a Broker's or channel's
`Ready` are the ones this pass wrote: an EventType goes Ready in the pass its Broker does. EventTypes have
no finalizer and nothing in the data plane; a registered one goes with its source by its ownerReference
(garbage.py), a stale one (the source no longer sends that type, or its sink is no longer a Broker or a
channel) is deleted here.
"""

from __future__ import annotations

from typing import Any

from control.api import kinds, source
from control.reconcilers.garbage import owned_by
from control.reconcilers.resources import eventtype as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes


def _sources(snapshot: Snapshot) -> list[dict[str, Any]]:
    return [obj for kind in kinds.in_category(source.CATEGORY) for obj in snapshot.live(kind.kind)]


class EventTypeReconciler:
    kind = "EventType"

    async def reconcile_all(self, snapshot: Snapshot, writes: Writes) -> None:
        await self._register(snapshot, writes)
        for et in snapshot.live(self.kind):
            await writes.status(et, build.status(et, snapshot))

    async def _register(self, snapshot: Snapshot, writes: Writes) -> None:
        eventtypes = snapshot.all(self.kind)
        for src in _sources(snapshot):
            wanted = build.registration(src).wanted
            namespace = src["metadata"]["namespace"]
            for name, child in wanted.items():
                await writes.ensure_child(src, child, snapshot.find(self.kind, namespace, name))
            for et in eventtypes:
                if owned_by(et, src) and et["metadata"]["name"] not in wanted:
                    await writes.delete(et)
