"""Watch-driven reconciles: a watch per kind on the API server queues the reconcile every change needs.

Each kind is listed, then watched from the list's resourceVersion (the store asks for bookmarks, so a quiet
kind resumes from a recent version); a version etcd has compacted away (410 Gone, `Expired`) lists again,
and any other failure (the API server away, a kind whose CRD is not installed) restarts that kind's watch
after a back-off, reported on /readyz as part `watch/<Kind>` (core/supervisor.py).

What a change queues is the key of the object it touched; the worker runs the reconcile the operator was
given for whatever has queued (a burst of events is one reconcile). A reconcile that fails puts its keys
back and is retried after a back-off that doubles up to `max_backoff_s`, reset by the next success.

The reconcile is a seam (`Reconcile`): today control's pass (control/reconcilers/controller.py), which
reads one snapshot and reconciles every object in it, so the keys say why a pass runs, not what it covers.
A reconciler that works per object can take the keys instead, with no change here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from core.supervisor import Supervisor
from core.watch import Expired, ResourceWatch

log = logging.getLogger("nerve.operator")

Key = tuple[str, str, str]
"""kind, namespace ("" when cluster-scoped), name."""
Reconcile = Callable[[set[Key]], Awaitable[object]]


class WatchLoop:
    def __init__(self, store: ResourceWatch, kinds: Iterable[str], reconcile: Reconcile, *,
                 debounce_s: float = 0.05, initial_backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        self._store = store
        self._kinds = tuple(kinds)
        self._reconcile = reconcile
        self._debounce = debounce_s
        self._initial_backoff = initial_backoff_s
        self._max_backoff = max_backoff_s
        self._pending: set[Key] = set()
        self._dirty = asyncio.Event()
        self._watches = {kind: Supervisor(f"watch/{kind}", self._follower(kind), initial_s=initial_backoff_s,
                                          max_s=max_backoff_s) for kind in self._kinds}
        self._worker: asyncio.Task[None] | None = None
        self.passes = 0
        """Reconciles run (successful or not): what a test waits on."""
        self.failures = 0

    def queue(self, key: Key) -> None:
        self._pending.add(key)
        self._dirty.set()

    def start(self) -> None:
        for watch in self._watches.values():
            watch.start()
        self._worker = asyncio.create_task(self._work(), name="operator-reconcile")

    async def stop(self) -> None:
        for watch in self._watches.values():
            await watch.stop()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def _follower(self, kind: str) -> Callable[[], Awaitable[None]]:
        async def follow() -> None:
            while True:
                listed = await self._store.list(kind)
                self._watches[kind].ok()
                # A (re)list may have missed changes while no watch ran: every listed object is due.
                for obj in listed.items:
                    self.queue(_key(obj))
                if not listed.items:
                    self.queue((kind, "", ""))
                try:
                    async for event in self._store.watch(kind, resource_version=listed.resource_version):
                        self.queue(_key(event.object))
                except Expired:
                    log.info("watch of %s expired (410 Gone): listing again", kind)
        return follow

    async def _work(self) -> None:
        backoff = self._initial_backoff
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)  # the rest of a burst joins this reconcile
            self._dirty.clear()
            keys, self._pending = self._pending, set()
            self.passes += 1
            try:
                await self._reconcile(keys)
            except Exception:
                self.failures += 1
                log.exception("reconcile of %d changed object(s) failed; again in %.1fs", len(keys), backoff)
                self._pending |= keys
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                self._dirty.set()
                continue
            backoff = self._initial_backoff


def _key(obj: dict[str, object]) -> Key:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", ""))
