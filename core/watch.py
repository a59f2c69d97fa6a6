"""The read side of a resource store: list and watch, the seam an ApiServerSource adapter watches through.

Shaped on the Kubernetes API (control/store/base.py says the semantics in full): `list` returns the
objects of a kind with the resourceVersion the list was read at, and `watch` from that version yields
every change after it, ADDED / MODIFIED / DELETED, in order. A version older than the store keeps
raises `Expired` (410 Gone): list again. `get` reads one object.

It lives in core because both sides need it: control's store implements it (`ResourceStore` is this plus
the writes), and sources/ watches through it without importing control. In `nerve up` the adapter is
handed the embedded SQLite store itself; a Kubernetes API server client would implement the same three
calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from core.errors import NerveError

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class Expired(NerveError):
    """A watch asked for changes older than the store still keeps (Kubernetes' 410 Gone)."""

    status = 410


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    object: dict[str, Any]
    """The object after the change; for DELETED, as it last was."""


@dataclass(frozen=True, slots=True)
class ObjectList:
    items: list[dict[str, Any]]
    resource_version: str
    """Where a watch starts to see every change after this list."""


class ResourceWatch(Protocol):
    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none (the API server's 404)."""
        ...

    async def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        """Every object of a kind, in one namespace or all, ordered by namespace and name."""
        ...

    def watch(self, kind: str, namespace: str | None = None, *,
              resource_version: str | None = None) -> AsyncIterator[WatchEvent]:
        """Changes after `resource_version`; with none, ADDED for every current object first."""
        ...
