"""Worker processes: N copies of a service on one port (SO_REUSEPORT), restarted when one dies, stopped together.

One Python process runs on one core. `python -m ingress --workers N`, `python -m dispatcher --workers N`
and `nerve up --workers N` start N worker processes of the same command; the kernel spreads new
connections over the workers' listening sockets (SO_REUSEPORT), and Kafka spreads partitions over the
dispatchers of one consumer group. This module is the parent's side and the worker's side of that:

- the parent reserves the port first (a bound, never listening SO_REUSEPORT socket), so `--port 0`
  means one free port for all workers, and no other program can take it between restarts;
- each worker gets `NERVE_WORKER=<index>` and a pipe to report on (`NERVE_WORKER_PIPE`): a line
  `ready` once it serves, a line `generation <n>` each time it has applied a contract (so `nerve up`
  can wait until every worker routes a new Broker before `nerve apply` returns);
- a worker that exits while the group runs is logged and started again (back-off doubling from 0.5 s
  to 10 s, reset after a worker stayed up 30 s); SIGINT/SIGTERM to the parent sends SIGTERM to every
  worker, which drains as a single service does, and kills what is left after the drain timeout;
- a worker dies with its parent (PR_SET_PDEATHSIG), so a killed parent leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("nerve.workers")

WORKER_ENV = "NERVE_WORKER"
PIPE_ENV = "NERVE_WORKER_PIPE"
PARENT_ENV = "NERVE_WORKER_PARENT"


def default_count() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def worker_index() -> int | None:
    """This process's index in its group, or None when it is no worker."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value is not None and value.isdigit() else None


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound SO_REUSEPORT socket on (host, port) that never listens: it holds the port for the workers,
    which bind their own listening sockets beside it. Returns it (keep it open) and the bound port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


class Report:
    """The worker's side of the pipe: tells the parent it serves, and which contract it has applied."""

    def __init__(self) -> None:
        fd = os.environ.get(PIPE_ENV)
        self._fd = int(fd) if fd and fd.isdigit() else None

    def _say(self, line: str) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, f"{line}\n".encode())
        except OSError:  # the parent is gone; PR_SET_PDEATHSIG ends this process soon
            self._fd = None

    def ready(self) -> None:
        self._say("ready")

    def generation(self, generation: int) -> None:
        self._say(f"generation {generation}")


def bind_to_parent() -> None:
    """In a worker: die with the parent (Linux PR_SET_PDEATHSIG), and exit now if it is already gone."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if str(os.getppid()) != parent:
        raise SystemExit(0)


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.generation = 0
        self.changed = asyncio.Event()
        self.starts = 0


class WorkerGroup:
    """`count` processes of `command(index)`, each told its index and given a report pipe."""

    def __init__(self, name: str, command: Callable[[int], Sequence[str]], count: int, *,
                 env: dict[str, str] | None = None, stop_timeout_s: float = 10.0) -> None:
        self.name = name
        self._command = command
        self._env = env
        self._stop_timeout = stop_timeout_s
        self._workers = [_Worker(i) for i in range(count)]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None and w.process.returncode is None]

    @property
    def restarts(self) -> int:
        return sum(max(0, w.starts - 1) for w in self._workers)

    async def start(self, *, ready_timeout_s: float = 60.0) -> None:
        """Start every worker and wait until each says it serves."""
        self._tasks = [asyncio.create_task(self._keep(w), name=f"{self.name}-worker-{w.index}")
                       for w in self._workers]
        try:
            async with asyncio.timeout(ready_timeout_s):
                await asyncio.gather(*(w.ready.wait() for w in self._workers))
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"{self.name} workers did not start within {ready_timeout_s:.0f} s") from None

    async def applied(self, generation: int, *, timeout_s: float = 10.0) -> bool:
        """Wait until every running worker has applied `generation` (or a later one); False on timeout."""
        async def one(worker: _Worker) -> None:
            while worker.generation < generation and worker.process is not None \
                    and worker.process.returncode is None:
                worker.changed.clear()
                await worker.changed.wait()

        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(one(w) for w in self._workers))
        except TimeoutError:
            return False
        return True

    async def _keep(self, worker: _Worker) -> None:
        backoff = 0.5
        while True:
            started = time.monotonic()
            try:
                returncode = await self._run(worker)
            except OSError as exc:
                log.error("%s worker %d could not start: %s", self.name, worker.index, exc)
                returncode = None
            if self._stopping:
                return
            if time.monotonic() - started > 30:
                backoff = 0.5
            log.warning("%s worker %d exited (%s); starting it again in %.1f s", self.name, worker.index,
                        returncode, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _run(self, worker: _Worker) -> int | None:
        read_fd, write_fd = os.pipe()
        env = dict(self._env if self._env is not None else os.environ)
        env |= {WORKER_ENV: str(worker.index), PIPE_ENV: str(write_fd), PARENT_ENV: str(os.getpid())}
        try:
            worker.process = await asyncio.create_subprocess_exec(
                *self._command(worker.index), env=env, pass_fds=(write_fd,), stdin=asyncio.subprocess.DEVNULL)
        finally:
            os.close(write_fd)
        worker.starts += 1
        worker.generation = 0
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(read_fd, "rb", 0))
        try:
            async for raw in reader:
                line = raw.decode(errors="replace").split()
                if line == ["ready"]:
                    worker.ready.set()
                elif len(line) == 2 and line[0] == "generation" and line[1].isdigit():
                    worker.generation = int(line[1])
                    worker.changed.set()
            return await worker.process.wait()
        finally:
            transport.close()
            worker.changed.set()  # whoever waits for its generation stops waiting on a dead worker

    async def stop(self) -> None:
        """SIGTERM to every worker; SIGKILL to any still running after the stop timeout."""
        self._stopping = True
        running = [w.process for w in self._workers if w.process is not None and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self._stop_timeout):
                await asyncio.gather(*(p.wait() for p in running))
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    log.warning("%s worker pid %d did not stop in %.0f s; killing it", self.name, process.pid,
                                self._stop_timeout)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*(p.wait() for p in running))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


def python_module(module: str, args: Sequence[str]) -> list[str]:
    """The command of a worker that runs `python -m <module> <args>` with this interpreter."""
    return [sys.executable, "-m", module, *args]
