"""One reconcile pass reads the store once; every builder then works on this snapshot, without I/O."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from control.store.base import ResourceStore, is_deleting


@dataclass(slots=True)
class Snapshot:
    by_kind: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _by_name: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    """Per kind, (namespace, name) -> object, made on the first lookup: a pass resolves a ref per Trigger, and
    a scan of the kind's list for each made 10,000 Triggers with Service refs quadratic. The pass's writes
    refresh objects in place, so the index stays true for the pass."""

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
        index = self._by_name.get(kind)
        if index is None:
            index = self._by_name[kind] = {}
            for obj in reversed(self.all(kind)):  # the first of a (namespace, name) wins, as the scan had it
                meta = obj["metadata"]
                index[(meta.get("namespace", ""), meta["name"])] = obj
        return index.get((namespace, name))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A live object (the resolver's `Lookup`): one being deleted no longer takes events."""
        obj = self.find(kind, namespace, name)
        return None if obj is None or is_deleting(obj) else obj
