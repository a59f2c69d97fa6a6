"""The runner: the contract's `workloads[]` in, one ContainerProcess per entry."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.contract import Contract
from sources.workloads.process import Backoff, ContainerProcess
from sources.workloads.report import WorkloadReporter


class WorkloadRunner:
    def __init__(self, logs_root: Path, reporter: WorkloadReporter, backoff: Backoff | None = None) -> None:
        self._logs_root = logs_root
        self._reporter = reporter
        self._backoff = backoff or Backoff()
        self._procs: dict[str, ContainerProcess] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self.generation = 0

    def pid(self, uid: str) -> int | None:
        proc = self._procs.get(uid)
        return proc.pid if proc is not None else None

    async def apply(self, contract: Contract) -> None:
        """Stop what left the contract or changed (its Pod deleted, its env changed), then start what is new.
        Returns once removed processes are gone, so `nerve delete pod` answers after its process ended."""
        async with self._lock:
            if self._closed:
                return
            desired = {w.uid: w for w in contract.workloads}
            going = [uid for uid, p in self._procs.items() if desired.get(uid) != p.workload]
            await asyncio.gather(*(self._procs.pop(uid).stop() for uid in going))
            for uid, workload in desired.items():
                if uid not in self._procs:
                    proc = ContainerProcess(workload, self._logs_root, self._reporter, self._backoff)
                    self._procs[uid] = proc
                    proc.start()
            self.generation = contract.generation

    async def stop(self) -> None:
        async with self._lock:
            self._closed = True
            procs, self._procs = list(self._procs.values()), {}
            await asyncio.gather(*(p.stop() for p in procs))
