"""One container of a local Pod: its process, restarts with back-off, its log file and its reports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from core.contract import Workload
from sources.workloads.programs import argv, environment
from sources.workloads.report import ContainerState, WorkloadReporter

log = logging.getLogger("nerve.sources.workloads")


@dataclass(frozen=True, slots=True)
class Backoff:
    """The kubelet's CrashLoopBackOff, shortened for a laptop: 1 s doubling to 60 s, reset after 60 s up."""

    initial_s: float = 1.0
    max_s: float = 60.0
    reset_after_s: float = 60.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _exit_code(returncode: int) -> int:
    """A process killed by signal N exits, as a container does, with 128 + N (SIGKILL: 137)."""
    return 128 - returncode if returncode < 0 else returncode


def _open_log(path: Path) -> BinaryIO:
    """The log file, appended to across restarts (a local disk write: quick enough for the event loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")


def _append(path: Path, text: str) -> None:
    with contextlib.suppress(OSError), _open_log(path) as out:
        out.write(text.encode())


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class ContainerProcess:
    def __init__(self, workload: Workload, logs_root: Path, reporter: WorkloadReporter, backoff: Backoff) -> None:
        self.workload = workload
        self._log_path = workload.log_path(logs_root)
        self._reporter = reporter
        self._backoff = backoff
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def name(self) -> str:
        ref = self.workload.reference
        return f"Pod/{ref.namespace}/{ref.name}/{self.workload.container}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"workload-{self.name}")

    async def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after the grace period; no report (the Pod is going)."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.workload.grace_seconds)
            except TimeoutError:
                log.warning("%s: still running %.0fs after SIGTERM; killing it", self.name, self.workload.grace_seconds)
                _kill_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc is not None:
            _kill_group(proc.pid, signal.SIGKILL)  # whatever it left behind in its group
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _say(self, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception:  # a report that cannot be written must not stop the process's supervision
            log.warning("%s: report failed", self.name, exc_info=True)

    def _state(self, **fields: object) -> Awaitable[None]:
        return self._reporter.container_state(self.workload, ContainerState(self.workload.container, **fields))  # type: ignore[arg-type]

    def _event(self, reason: str, message: str, type_: str = "Normal") -> Awaitable[None]:
        return self._reporter.event(self.workload, reason, message, type_)

    async def _spawn(self) -> asyncio.subprocess.Process:
        with _open_log(self._log_path) as out:  # the child keeps its own copy of the descriptor
            return await asyncio.create_subprocess_exec(
                *argv(self.workload), stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                env=environment(self.workload), cwd=self.workload.working_dir or None, start_new_session=True)

    async def _probe(self, proc: asyncio.subprocess.Process, restarts: int, started: str,
                     last: dict[str, object] | None) -> None:
        """A program that serves is Ready once its port accepts connections (a readiness probe)."""
        while proc.returncode is None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.workload.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            await self._say(self._state(state="running", started_at=started, restart_count=restarts, ready=True,
                                        pid=proc.pid, last_terminated=last))
            return

    async def _run(self) -> None:
        name, pod = self.workload.container, self.workload.reference.name
        restarts, delay = 0, self._backoff.initial_s
        last: dict[str, object] | None = None
        loop = asyncio.get_running_loop()
        while True:
            await self._say(self._event("Created", f"Created container {name}"))
            started, began = _now(), loop.time()
            probe: asyncio.Task[None] | None = None
            try:
                proc = await self._spawn()
            except OSError as exc:
                code, reason, message = 128, "StartError", f"failed to start container {name}: {exc}"
                await self._say(self._event("Failed", f"Error: {message}", "Warning"))
                _append(self._log_path, f"{message}\n")
            else:
                self._proc = proc
                await self._say(self._event("Started", f"Started container {name}"))
                await self._say(self._state(state="running", started_at=started, restart_count=restarts,
                                            ready=not self.workload.serves, pid=proc.pid, last_terminated=last))
                if self.workload.serves:
                    probe = asyncio.create_task(self._probe(proc, restarts, started, last))
                code = _exit_code(await proc.wait())
                _kill_group(proc.pid, signal.SIGKILL)
                reason, message = ("Completed" if code == 0 else "Error"), ""
            if probe is not None:
                probe.cancel()
            if self._stopping:
                return
            finished = _now()
            terminated = ContainerState(name, "terminated", reason, message, code, started, finished)
            policy = self.workload.restart_policy
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                await self._say(self._state(state="terminated", reason=reason, message=message, exit_code=code,
                                            started_at=started, finished_at=finished, restart_count=restarts,
                                            last_terminated=last))
                return
            if loop.time() - began >= self._backoff.reset_after_s:
                delay = self._backoff.initial_s
            last = dict(terminated.terminated_json())
            log.info("%s exited with %d; restarting in %.0fs", self.name, code, delay)
            await self._say(self._state(state="waiting", reason="CrashLoopBackOff",
                                        message=f"back-off {delay:.0f}s restarting failed container={name} pod={pod}",
                                        restart_count=restarts, last_terminated=last))
            await self._say(self._event("BackOff", f"Back-off restarting failed container {name} in pod {pod}",
                                        "Warning"))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff.max_s)
            restarts += 1
