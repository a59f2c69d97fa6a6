"""The watch loop's objects as the reconcilers' reads: an informer cache.

A reconcile pass lists every kind (control/reconcilers/snapshot.py); against an API server each LIST is a
round trip that decodes every object (about 80 ms for 100 Triggers on the test machine), some 25 of them
per round. The watch loop already holds every object of every kind it watches, as of its latest event, so
`CachedStore.list` answers from that for a kind once its first list has arrived, and from the API server
before. `get` and every write go to the API server (a write's answer also refreshes the cache, so the
next round of the same pass sees it). A cached object can be a moment behind the API server, as a
controller-runtime informer's is: a write from a stale one is a Conflict, which the pass already treats as
a lost race (another round, or the next change).

Objects are kept encoded and decoded on each list, so a reconciler that changes what it was given (the
pass does) never changes the cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from control.store.base import ResourceStore
from core.watch import ObjectList, WatchEvent

Key = tuple[str, str]


def _newer(new: dict[str, Any], old: bytes | None) -> bool:
    """Whether `new` may replace what is cached: resourceVersions are opaque, but an API server's are etcd
    revisions, so a late watch event older than a write's answer is recognised and dropped."""
    if old is None:
        return True
    try:
        return int(new["metadata"]["resourceVersion"]) >= int(orjson.loads(old)["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True


class WatchCache:
    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, bytes]] = {}
        self._versions: dict[str, str] = {}

    def has(self, kind: str) -> bool:
        return kind in self._objects

    def replace(self, kind: str, listed: ObjectList) -> None:
        self._objects[kind] = {_key(o): orjson.dumps(o) for o in listed.items}
        self._versions[kind] = listed.resource_version

    def apply(self, kind: str, event: WatchEvent) -> None:
        objects = self._objects.get(kind)
        if objects is None:
            return
        key = _key(event.object)
        if event.type == "DELETED":
            objects.pop(key, None)
        elif _newer(event.object, objects.get(key)):
            objects[key] = orjson.dumps(event.object)
        self._versions[kind] = str(event.object.get("metadata", {}).get("resourceVersion", self._versions[kind]))

    def list(self, kind: str, namespace: str | None) -> ObjectList:
        objects = self._objects[kind]
        keys = sorted(k for k in objects if namespace is None or k[0] == namespace)
        return ObjectList([orjson.loads(objects[k]) for k in keys], self._versions[kind])


class CachedStore(ResourceStore):
    """`store` with its lists answered from `cache` (see the module docstring)."""

    def __init__(self, store: ResourceStore, cache: WatchCache) -> None:
        self._store = store
        self._cache = cache

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._store.get(kind, namespace, name)

    async def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        if self._cache.has(kind):
            return self._cache.list(kind, namespace)
        return await self._store.list(kind, namespace)

    def watch(self, kind: str, namespace: str | None = None, *,
              resource_version: str | None = None) -> AsyncIterator[WatchEvent]:
        return self._store.watch(kind, namespace, resource_version=resource_version)

    def _written(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._cache.apply(str(obj.get("kind", "")), WatchEvent("MODIFIED", obj))
        return obj

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._written(await self._store.create(obj))

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._written(await self._store.update(obj))

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._written(await self._store.update_status(obj))

    async def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        marked = await self._store.delete(kind, namespace, name)
        if marked is None:
            self._cache.apply(kind, WatchEvent("DELETED", {"metadata": {"namespace": namespace, "name": name}}))
        else:
            self._written(marked)
        return marked

    async def close(self) -> None:
        await self._store.close()


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name", ""))
