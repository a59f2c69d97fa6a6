"""The ApiServerSource reconciler: status and the `sources[]` entry; nothing to clean up on deletion
(the adapter stops when the contract no longer names the source)."""

from __future__ import annotations

from control.reconcilers.resources import apiserversource as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from core.contract import Source

DEFAULT_SOURCE_URL = "http://127.0.0.1:8081"


class ApiServerSourceReconciler:
    kind = "ApiServerSource"

    def __init__(self, *, source_url: str = "", watch_available: bool = False) -> None:
        self.source_url = source_url or DEFAULT_SOURCE_URL
        """The `source` of every event: the URL of the API server watched, here the control API's."""
        self.watch_available = watch_available
        """Whether the sources service is handed the store (`nerve up`) or runs apart from it."""

    async def reconcile_all(self, snapshot: Snapshot, resolver: Resolver, writes: Writes) -> list[Source]:
        out: list[Source] = []
        for source in snapshot.live(self.kind):
            built = build.build(source, snapshot, resolver, source_url=self.source_url,
                                watch_available=self.watch_available)
            await writes.status(source, built.status)
            if built.source is not None:
                out.append(built.source)
        return out
