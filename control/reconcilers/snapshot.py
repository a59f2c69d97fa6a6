"""One reconcile pass reads the store once; every builder then works on this snapshot, without I/O."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from control.store.base import ResourceStore, is_deleting


@dataclass(slots=True)
class Snapshot:
    by_kind: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    async def load(cls, store: ResourceStore, kinds: Iterable[str]) -> Snapshot:
        return cls({kind: (await store.list(kind)).items for kind in kinds})

    @classmethod
    def of(cls, objects: Iterable[dict[str, Any]]) -> Snapshot:
        snapshot = cls()
        for obj in objects:
            snapshot.by_kind.setdefault(obj["kind"], []).append(obj)
        return snapshot

    def all(self, kind: str) -> list[dict[str, Any]]:
        return self.by_kind.get(kind, [])

    def live(self, kind: str) -> list[dict[str, Any]]:
        """The objects of a kind that are not being deleted."""
        return [o for o in self.all(kind) if not is_deleting(o)]

    def deleting(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.all(kind) if is_deleting(o)]

    def objects(self) -> Iterator[dict[str, Any]]:
        for objs in self.by_kind.values():
            yield from objs

    def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Live or being deleted."""
        for obj in self.all(kind):
            meta = obj["metadata"]
            if meta.get("namespace", "") == namespace and meta["name"] == name:
                return obj
        return None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A live object (the resolver's `Lookup`): one being deleted no longer takes events."""
        obj = self.find(kind, namespace, name)
        return None if obj is None or is_deleting(obj) else obj
