"""The reconcilers' writes to the store: statuses, finalizers and owned children, with optimistic concurrency.

A write that loses a race (Conflict: someone changed the object since this pass read it; NotFound:
it is gone) is not an error: the object is skipped and the pass asks for another round, which reads
it again. Each successful write refreshes the snapshot's copy so later writes carry its new version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from control.reconcilers import finalizers
from control.reconcilers.garbage import owned_by, owner_reference
from control.store.base import ResourceStore, StatusHandOver, is_deleting, key_of
from core.errors import Conflict, NotFound

log = logging.getLogger("nerve.control")


class Writes:
    def __init__(self, store: ResourceStore) -> None:
        self._store = store
        self.again = False
        """Set when a write lost a race, or removed or deleted something: run another round."""
        self.decorate: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
        """Adds a cross-cutting part to every status before it is written (OIDC's audience and policies)."""

    @staticmethod
    def _refresh(obj: dict[str, Any], new: dict[str, Any]) -> None:
        obj.clear()
        obj.update(new)

    def _lost(self, obj: dict[str, Any], exc: Exception) -> None:
        log.debug("%s: %s; reconciling it again", "/".join(key_of(obj)), exc)
        self.again = True

    async def status(self, obj: dict[str, Any], status: dict[str, Any], *, handed_over: bool = False) -> None:
        """`handed_over`: `status` is the caller's to give (nothing changes it after; TriggerReconciler's
        statuses) and `obj` is as this pass read it, then `obj` may take `status` itself rather than a parse of
        what was stored (StatusHandOver)."""
        if self.decorate is not None:
            status = self.decorate(obj, status)
        if obj.get("status") == status:
            return
        store = self._store
        try:
            if handed_over and isinstance(store, StatusHandOver):
                self._refresh(obj, await store.update_status_handed_over({**obj, "status": status}))
            else:
                self._refresh(obj, await store.update_status({**obj, "status": status}))
        except (Conflict, NotFound) as exc:
            obj["status"] = status  # what this pass computed still informs the rest of the pass
            self._lost(obj, exc)

    async def spec(self, obj: dict[str, Any], spec: dict[str, Any]) -> None:
        """A controller's own write of an object's spec (a channel's spec.subscribers), around admission."""
        if obj.get("spec") == spec:
            return
        try:
            self._refresh(obj, await self._store.update({**obj, "spec": spec}))
        except (Conflict, NotFound) as exc:
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

    async def ensure_child(self, owner: dict[str, Any], child: dict[str, Any], existing: dict[str, Any] | None,
                           *, keep: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """Make the stored child what `child` says: created with an ownerReference to `owner`, or its spec,
        labels and annotations updated where they differ. `existing` is the stored object of that name (from
        the pass's snapshot), `keep` the spec keys someone else writes (a channel's `subscribers`), carried
        over as they are. Returns the stored child, or None when it is not this owner's to write (an object
        of that name the owner does not own: the caller says so in its status), is still being deleted,
        or the write lost a race (another round follows)."""
        wanted = {**child, "metadata": {**child["metadata"], "ownerReferences": [owner_reference(owner)]}}
        if existing is None:
            try:
                created = await self._store.create(wanted)
            except (Conflict, NotFound) as exc:
                self._lost(wanted, exc)
                return None
            self.again = True  # the child is reconciled in the next round of this pass
            return created
        if not owned_by(existing, owner) or is_deleting(existing):
            return None
        meta, new_meta = existing["metadata"], wanted["metadata"]
        spec = {**child.get("spec", {}), **{k: v for k, v in existing.get("spec", {}).items() if k in keep}}
        labels = {**(meta.get("labels") or {}), **(new_meta.get("labels") or {})}
        annotations = {**(meta.get("annotations") or {}), **(new_meta.get("annotations") or {})}
        if existing.get("spec", {}) == spec and (meta.get("labels") or {}) == labels and \
                (meta.get("annotations") or {}) == annotations:
            return existing
        updated = {**existing, "spec": spec, "metadata": {**meta, "labels": labels, "annotations": annotations}}
        try:
            stored = await self._store.update(updated)
        except (Conflict, NotFound) as exc:
            self._lost(existing, exc)
            return None
        self._refresh(existing, stored)
        self.again = True
        return existing

    async def delete(self, obj: dict[str, Any]) -> None:
        try:
            await self._store.delete(*key_of(obj))
        except NotFound:
            return
        self.again = True
