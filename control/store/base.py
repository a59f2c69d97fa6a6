"""The resource store seam, shaped on the Kubernetes API so an API server can implement it.

Objects are Knative/Kubernetes JSON (apiVersion, kind, metadata, spec, status), keyed by kind,
namespace ("" for cluster-scoped kinds) and name. The semantics are the API server's:

- Every write gives the object a new `metadata.resourceVersion`, an opaque string: compare it for
  equality only. `update` and `update_status` carrying a resourceVersion succeed only if it is still
  the stored one, otherwise they raise `Conflict` (optimistic concurrency: read again, retry). Without
  one they are unconditional, as a Kubernetes PUT without resourceVersion is.
- `update` writes everything but `status`; `update_status` writes only `status` (the status
  subresource). The store owns `uid`, `creationTimestamp`, `generation` (bumped when anything outside
  metadata and status changes), `resourceVersion` and `deletionTimestamp`.
- `delete` of an object with `metadata.finalizers` only marks it (`deletionTimestamp`); it is removed
  when an update leaves it with no finalizers. Whoever owns a finalizer cleans up, then removes it.
- `watch` yields ADDED / MODIFIED / DELETED events after a resourceVersion (one from `list`), or,
  with none, ADDED for every current object first. A version older than the store keeps raises
  `Expired` (410 Gone): list again.

Garbage collection by `metadata.ownerReferences` is not the store's job (in Kubernetes it is a
controller's); control's reconciler does it (control/reconcilers/garbage.py).

All-or-nothing `nerve apply` is validation of every document before any write. A store that can also
write several objects in one transaction implements `BatchStore` (SQLite does); on one that cannot (the
Kubernetes API) `write_all` writes them one by one, so a write that fails midway (a Conflict, the API
server going away) leaves the earlier ones written, as `kubectl apply -f dir/` does.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

# The read side (list, watch and their types) is core's, so a source adapter can watch a store without
# importing control; re-exported here, where the rest of the store's seam is.
from core.watch import EventType, Expired, ObjectList, ResourceWatch, WatchEvent

__all__ = ["SERVER_METADATA", "BatchRead", "BatchStore", "EventType", "Expired", "GroupCommit", "Key", "ObjectList",
           "ResourceStore", "ResourceWatch", "StatusHandOver", "WatchEvent", "Write", "WriteOp", "get_all", "grouped",
           "is_deleting",
           "key_of", "user_view", "write_all"]

WriteOp = Literal["create", "update"]
Key = tuple[str, str, str]
"""Where an object is: kind, namespace ("" for a cluster-scoped kind), name."""
# metadata the store (or a controller, for finalizers) owns: never taken from a user's manifest as is.
SERVER_METADATA = frozenset({"uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp",
                             "deletionGracePeriodSeconds", "finalizers", "managedFields"})


@dataclass(frozen=True, slots=True)
class Write:
    """One write of a batch: `create` a new object, or `update` one (checked by its resourceVersion)."""

    op: WriteOp
    object: dict[str, Any] = field(default_factory=dict)


class ResourceStore(ResourceWatch, Protocol):
    """The reads (get, list, watch: core.watch.ResourceWatch) and the writes."""

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object; Conflict if the name exists (also while it is being deleted)."""
        ...

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace metadata and spec; NotFound if absent, Conflict on a stale resourceVersion."""
        ...

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace only the status; NotFound if absent, Conflict on a stale resourceVersion."""
        ...

    async def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Delete, or mark for deletion while finalizers remain: returns the marked object, or None
        once it is gone. NotFound if there is no such object."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class BatchStore(Protocol):
    async def write_batch(self, writes: list[Write]) -> list[dict[str, Any]]:
        """Apply every write in one transaction: all are stored or none (the first error is raised). The writes'
        objects are handed over: the stored objects returned may share values with them (SQLite's creates
        return the object written, not a parse of what was stored), so the caller must not change them after."""
        ...


async def write_all(store: ResourceStore, writes: list[Write]) -> list[dict[str, Any]]:
    """In one transaction where the store has them, otherwise one by one (see the module docstring)."""
    if isinstance(store, BatchStore):
        return await store.write_batch(writes)
    return [await (store.create(w.object) if w.op == "create" else store.update(w.object)) for w in writes]


@runtime_checkable
class BatchRead(Protocol):
    async def get_many(self, keys: list[Key]) -> dict[Key, dict[str, Any]]:
        """What `get` answers for each key, read at once: the keys of the objects there are (absent ones are
        left out), each a copy of its own."""
        ...


async def get_all(store: ResourceStore, keys: list[Key]) -> dict[Key, dict[str, Any]]:
    """The stored objects at `keys` (absent ones left out): in a few reads where the store has them (SQLite:
    an apply of 10,000 Triggers reads what is stored of each before admitting it, 10,000 statements one by
    one), else one `get` each."""
    if isinstance(store, BatchRead):
        return await store.get_many(keys)
    found = {}
    for key in dict.fromkeys(keys):
        obj = await store.get(*key)
        if obj is not None:
            found[key] = obj
    return found


@runtime_checkable
class StatusHandOver(Protocol):
    async def update_status_handed_over(self, obj: dict[str, Any]) -> dict[str, Any]:
        """`update_status` for a caller that gives `obj` up, its status included, and read `obj` from this store
        at the resourceVersion it carries (a reconcile pass's Trigger): the object returned may be made of
        obj's own values instead of a parse of what was stored, which is the same."""
        ...


@runtime_checkable
class GroupCommit(Protocol):
    def grouped(self) -> contextlib.AbstractContextManager[None]:
        """Commit the writes made inside once, at the end, rather than each on its own. Each write keeps its
        own all-or-nothing (a failed one leaves no trace) and is visible to reads at once; what changes is
        only that one commit carries them all (a reconcile pass's statuses and finalizers: 20,000 writes
        for 10,000 new Triggers)."""
        ...


@contextlib.contextmanager
def grouped(store: ResourceStore) -> Iterator[None]:
    """The store's GroupCommit where it has one (SQLite); elsewhere (an API server) writes are as they are."""
    if isinstance(store, GroupCommit):
        with store.grouped():
            yield
    else:
        yield


def key_of(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"])


def user_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What a manifest says: the object without status and without the server's metadata."""
    view = {k: copy.deepcopy(v) for k, v in obj.items() if k != "status"}
    view["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    return view


def is_deleting(obj: dict[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))
