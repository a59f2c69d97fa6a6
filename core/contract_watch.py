"""Follow the contract file: the data plane's way to learn of a new generation in compose and Kubernetes.

Polling the file's modification time and size is enough (a ConfigMap volume swaps a symlink, which
inotify handles badly) and costs one stat() per interval. A file that cannot be read or parsed keeps
the last good contract in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from core.contract import Contract, read

log = logging.getLogger("nerve.contract")

Listener = Callable[[Contract], Awaitable[None]]


class ContractWatcher:
    def __init__(self, path: Path, listeners: list[Listener], *, interval_s: float = 0.5) -> None:
        self._path = path
        self._listeners = listeners
        self._interval = interval_s
        self._seen: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.generation = -1

    async def check(self) -> None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._seen:
            return
        try:
            contract = read(self._path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("contract %s unreadable, keeping generation %d: %s", self._path, self.generation, exc)
            return
        self._seen = stamp
        if contract.generation == self.generation:
            return
        for listener in self._listeners:
            await listener(contract)
        self.generation = contract.generation

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="contract-watch")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
