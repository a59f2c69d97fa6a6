"""Watch-driven reconciles: a watch per kind on the API server queues the reconcile every change needs.

Each kind is listed, then watched from the list's resourceVersion (the store asks for bookmarks, so a quiet
kind resumes from a recent version); a version etcd has compacted away (410 Gone, `Expired`) lists again,
and any other failure (the API server away, a kind whose CRD is not installed) restarts that kind's watch
after a back-off, reported on /readyz as part `watch/<Kind>` (core/supervisor.py).

A change to one of the cluster's own kinds (`status_blind`: Pods, ConfigMaps, Services, ... which change
all the time on a busy cluster, their status above all) queues a reconcile only when something other than
its status and server bookkeeping changed (its spec, data, labels, annotations, finalizers, deletion): a
Pod's status or another controller's leader-election renewals do not make passes. Nerve's own kinds
queue on every change, status included, since one object's status feeds another's (a Trigger reads its
Broker's).

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
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from control.operator.cache import WatchCache
from core.supervisor import Supervisor
from core.watch import Expired, ResourceWatch

log = logging.getLogger("nerve.operator")

Key = tuple[str, str, str]
"""kind, namespace ("" when cluster-scoped), name."""
Reconcile = Callable[[set[Key]], Awaitable[object]]
SLOW_S = 1.0
"""A reconcile this long is logged (INFO); shorter ones at DEBUG."""


class WatchLoop:
    def __init__(self, store: ResourceWatch, kinds: Iterable[str], reconcile: Reconcile, *,
                 status_blind: Iterable[str] = (), cache: WatchCache | None = None, debounce_s: float = 0.05,
                 initial_backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        """`cache` is kept up to date with every kind's objects (control/operator/cache.py)."""
        self._store = store
        self._cache = cache
        self._kinds = tuple(kinds)
        self._status_blind = frozenset(status_blind)
        self._seen: dict[Key, bytes] = {}
        """What each status-blind object looked like (its digest), to skip changes of status alone."""
        self.skipped = 0
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
                if self._cache is not None:
                    self._cache.replace(kind, listed)
                # A (re)list may have missed changes while no watch ran: every listed object is due.
                for obj in listed.items:
                    self._changed(kind, "ADDED", obj, force=True)
                if not listed.items:
                    self.queue((kind, "", ""))
                try:
                    async for event in self._store.watch(kind, resource_version=listed.resource_version):
                        if self._cache is not None:
                            self._cache.apply(kind, event)
                        self._changed(kind, event.type, event.object)
                except Expired:
                    log.info("watch of %s expired (410 Gone): listing again", kind)
        return follow

    def _changed(self, kind: str, event: str, obj: dict[str, Any], *, force: bool = False) -> None:
        key = _key(obj)
        if kind in self._status_blind:
            if event == "DELETED":
                self._seen.pop(key, None)
            else:
                digest = _meaningful(obj)
                if self._seen.get(key) == digest and not force:
                    self.skipped += 1
                    return
                self._seen[key] = digest
        self.queue(key)

    async def _work(self) -> None:
        backoff = self._initial_backoff
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)  # the rest of a burst joins this reconcile
            self._dirty.clear()
            keys, self._pending = self._pending, set()
            self.passes += 1
            began = time.monotonic()
            try:
                await self._reconcile(keys)
                took = time.monotonic() - began
                (log.info if took >= SLOW_S else log.debug)("reconcile %d of %d changed object(s) took %.2fs",
                                                            self.passes, len(keys), took)
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


_BOOKKEEPING = frozenset({"resourceVersion", "managedFields", "generation"})


def _meaningful(obj: dict[str, Any]) -> bytes:
    """A digest of what a reconciler can read of one of the cluster's own objects: all but its status and
    the server's bookkeeping."""
    meta = obj.get("metadata")
    view = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    view["metadata"] = {k: v for k, v in (meta if isinstance(meta, dict) else {}).items() if k not in _BOOKKEEPING}
    return hashlib.blake2b(orjson.dumps(view, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
