"""The reconcilers' writes to the store: statuses and finalizers, with optimistic concurrency.

A write that loses a race (Conflict: someone changed the object since this pass read it; NotFound:
it is gone) is not an error: the object is skipped and the pass asks for another round, which reads
it again. Each successful write refreshes the snapshot's copy so later writes carry its new version.
"""

from __future__ import annotations

import logging
from typing import Any

from control.reconcilers import finalizers
from control.store.base import ResourceStore, key_of
from core.errors import Conflict, NotFound

log = logging.getLogger("nerve.control")


class Writes:
    def __init__(self, store: ResourceStore) -> None:
        self._store = store
        self.again = False
        """Set when a write lost a race, or removed or deleted something: run another round."""

    @staticmethod
    def _refresh(obj: dict[str, Any], new: dict[str, Any]) -> None:
        obj.clear()
        obj.update(new)

    def _lost(self, obj: dict[str, Any], exc: Exception) -> None:
        log.debug("%s: %s; reconciling it again", "/".join(key_of(obj)), exc)
        self.again = True

    async def status(self, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") == status:
            return
        try:
            self._refresh(obj, await self._store.update_status({**obj, "status": status}))
        except (Conflict, NotFound) as exc:
            obj["status"] = status  # what this pass computed still informs the rest of the pass
            self._lost(obj, exc)

    async def add_finalizer(self, obj: dict[str, Any]) -> bool:
        """True once the object carries the backend clean-up finalizer (or is being deleted)."""
        if not finalizers.needs_adding(obj):
            return True
        try:
            self._refresh(obj, await self._store.update(finalizers.added(obj)))
        except (Conflict, NotFound) as exc:
            self._lost(obj, exc)
            return False
        return True

    async def remove_finalizer(self, obj: dict[str, Any]) -> None:
        try:
            await self._store.update(finalizers.removed(obj))
        except (Conflict, NotFound) as exc:
            self._lost(obj, exc)
            return
        self.again = True

    async def delete(self, obj: dict[str, Any]) -> None:
        try:
            await self._store.delete(*key_of(obj))
        except NotFound:
            return
        self.again = True
