"""Follow the contract file: the data plane's way to learn of a new generation in compose and Kubernetes.

Polling the file's modification time and size is enough (a ConfigMap volume swaps a symlink, which
inotify handles badly) and costs one stat() per interval. A file that cannot be read or parsed keeps
the last good contract in force.

The watch is supervised (core/supervisor.py): a listener that raises is logged by name, the part
`contract-watch` is reported down on /readyz, and the watch goes on after a back-off, offering the
contract again to each listener that has not applied it yet (the others are not called twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from core.contract import Contract, read
from core.supervisor import Supervisor, describe

log = logging.getLogger("nerve.contract")

Listener = Callable[[Contract], Awaitable[None]]
PART = "contract-watch"


class ListenerFailed(Exception):
    """Some listeners did not apply a generation; they get it again on the next check."""


def _name(listener: Listener) -> str:
    return getattr(listener, "__qualname__", None) or repr(listener)


class ContractWatcher:
    def __init__(self, path: Path, listeners: list[Listener], *, interval_s: float = 0.5,
                 restart_initial_s: float = 0.5, restart_max_s: float = 30.0) -> None:
        self._path = path
        self._listeners = listeners
        self._interval = interval_s
        self._seen: tuple[int, int] | None = None
        self._contract: Contract | None = None
        self._applied = [-1] * len(listeners)
        self._first_check = asyncio.Event()
        self._supervisor = Supervisor(PART, self._loop, initial_s=restart_initial_s, max_s=restart_max_s)
        self.generation = -1

    async def check(self) -> None:
        """Read the file if it changed and hand a new generation to every listener that lacks it.

        Raises ListenerFailed (after offering it to all of them) when any listener raised."""
        self._read_if_changed()
        contract = self._contract
        if contract is None:
            return
        failed: list[str] = []
        for index, listener in enumerate(self._listeners):
            if self._applied[index] == contract.generation:
                continue
            try:
                await listener(contract)
            except Exception as exc:
                log.exception("contract generation %d: listener %s failed", contract.generation, _name(listener))
                failed.append(f"{_name(listener)}: {describe(exc)}")
                continue
            self._applied[index] = contract.generation
        if failed:
            raise ListenerFailed(f"generation {contract.generation} not applied by " + "; ".join(failed))
        self.generation = contract.generation

    def _read_if_changed(self) -> None:
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
        if self._contract is None or contract.generation != self._contract.generation:
            self._contract = contract

    async def start(self) -> None:
        """Apply the contract on file now, then follow it. Returns after the first attempt: a listener that
        failed it is retried by the supervised watch after a back-off, and /readyz says so meanwhile."""
        self._supervisor.start()
        await self._first_check.wait()

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            finally:
                self._first_check.set()
            self._supervisor.ok()
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        await self._supervisor.stop()
