"""Follow the contract: the data plane's way to learn of a new generation in compose and Kubernetes.

Where a generation comes from is a `ContractFeed`:

- `FileFeed` polls the file control writes (a shared volume), or a directory: the contract ConfigMaps the
  operator writes, mounted (core/contract.py `read_directory`). Polling the file's (the directory's
  index's) modification time and size is enough (a ConfigMap volume swaps a symlink, which inotify
  handles badly) and costs one stat() per interval.
- `ControlFeed` long-polls control's API (`GET /api/v1/contract?after=<generation>`): control answers
  at once when it has another generation, else holds the request until one is published or the wait
  ends (304). A new generation reaches the data plane in one round trip and no volume is shared;
  docs/architecture.md says why this is the push-style option rather than a compacted topic or a KV bucket.

A contract that cannot be read or parsed keeps the last good one in force.

The watch is supervised (core/supervisor.py): a listener that raises is logged by name, the part
`contract-watch` is reported down on /readyz, and the watch goes on after a back-off, offering the
contract again to each listener that has not applied it yet (the others are not called twice). A feed
that fails (control unreachable, a 401) is reported down the same way, and the last contract stays in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import aiohttp

from core.contract import Contract, read, stamp_path
from core.errors import BackendError
from core.supervisor import Supervisor, describe

log = logging.getLogger("nerve.contract")

Listener = Callable[[Contract], Awaitable[None]]
PART = "contract-watch"
CONTRACT_PATH = "/api/v1/contract"
"""Where control serves the contract to a ControlFeed (control/server.py)."""


class ListenerFailed(Exception):
    """Some listeners did not apply a generation; they get it again on the next check."""


def _name(listener: Listener) -> str:
    return getattr(listener, "__qualname__", None) or repr(listener)


class ContractFeed(Protocol):
    async def changed(self, generation: int) -> Contract | None:
        """A contract whose generation is not `generation` (-1: none yet), or None when none came within
        the feed's own wait. Raises when the feed cannot be read at all (reported down, retried)."""
        ...

    async def close(self) -> None: ...


class FileFeed:
    def __init__(self, path: Path, *, interval_s: float = 0.5) -> None:
        self._path = path
        self._interval = interval_s
        self._seen: tuple[int, int, int] | None = None
        self._contract: Contract | None = None

    async def changed(self, generation: int) -> Contract | None:
        self._read_if_changed()
        if self._contract is not None and self._contract.generation != generation:
            return self._contract
        await asyncio.sleep(self._interval)
        return None

    def _read_if_changed(self) -> None:
        try:
            st = stamp_path(self._path).stat()
        except FileNotFoundError:
            return
        # The inode too: a ConfigMap volume's new files can keep the old size and a coarse mtime.
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._seen:
            return
        try:
            contract = read(self._path)
        except (OSError, ValueError, KeyError) as exc:
            kept = -1 if self._contract is None else self._contract.generation
            log.warning("contract %s unreadable, keeping generation %d: %s", self._path, kept, exc)
            return
        self._seen = stamp
        self._contract = contract

    async def close(self) -> None:
        return None


class ControlFeed:
    """Long-polls control's API with its bearer token; one request is open at a time."""

    def __init__(self, control_url: str, token: str, *, wait_s: float = 30.0) -> None:
        self._url = control_url.rstrip("/") + CONTRACT_PATH
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._wait = wait_s
        self._session: aiohttp.ClientSession | None = None

    async def changed(self, generation: int) -> Contract | None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        params = {"after": str(generation), "timeoutSeconds": str(int(self._wait))}
        try:
            async with self._session.get(self._url, params=params, headers=self._headers,
                                         timeout=aiohttp.ClientTimeout(total=self._wait + 10)) as response:
                body = await response.read()
                if response.status == 304:
                    return None
                if response.status != 200:
                    raise BackendError(f"control at {self._url} answered {response.status}: "
                                       f"{body[:200].decode(errors='replace')}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BackendError(f"control at {self._url} unreachable: {describe(exc)}") from exc
        try:
            return Contract.loads(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"control at {self._url} sent a contract that does not parse: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ContractWatcher:
    def __init__(self, feed: ContractFeed | Path, listeners: list[Listener], *, interval_s: float = 0.5,
                 restart_initial_s: float = 0.5, restart_max_s: float = 30.0) -> None:
        # A path is the file feed, the common case (and the tests' shorthand).
        self._feed = FileFeed(feed, interval_s=interval_s) if isinstance(feed, Path) else feed
        self._listeners = listeners
        self._contract: Contract | None = None
        self._applied = [-1] * len(listeners)
        self._first_check = asyncio.Event()
        self._supervisor = Supervisor(PART, self._loop, initial_s=restart_initial_s, max_s=restart_max_s)
        self.generation = -1

    async def check(self) -> None:
        """Offer the contract in force to every listener that lacks it, then wait for the feed's next one
        and offer that. Raises ListenerFailed (after offering it to all of them) when any listener raised:
        the next check offers it again before it waits, so a retry is not held up by a quiet feed."""
        await self._offer()
        fresh = await self._feed.changed(-1 if self._contract is None else self._contract.generation)
        if fresh is not None:
            self._contract = fresh
            await self._offer()

    async def _offer(self) -> None:
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

    async def stop(self) -> None:
        await self._supervisor.stop()
        await self._feed.close()
