"""What the local Kafka and NATS launchers share: a detached server process, its state file, the wait
until it is ready, and the command line (`start`, `stop`, `run`).

Standard library only. A server runs in its own session (process group) so a signal reaches all of
it, and the Popen handle is kept so the child is reaped here rather than reported as leaked. Each
launcher supplies only what is its own: how to start its server, what "ready" means, its error type.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the tests and the benchmarks use it too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """True when another process owns the port: a second server there would exit at once, or answer a
    readiness probe in this one's place."""
    with socket.socket() as sock:
        # As the JVM and Go do for their listeners: connections of a killed server lingering in TIME_WAIT
        # do not keep a restart from binding the same port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class ServerProcess:
    pid: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, kw_only=True)

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # Started by another process (`stop` from the command line): an exited server waits as a zombie
        # until the init process reaps it, which may take seconds; it is gone all the same.
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return True
        return stat.rpartition(")")[2].split()[:1] != ["Z"]

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM for a clean shutdown; SIGKILL if it has not ended in time."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive():
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing flushed."""
        self._signal(signal.SIGKILL)
        for _ in range(200):
            if not self.alive():
                return
            time.sleep(0.05)

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass


def read_state(path: Path) -> dict[str, Any]:
    """What a previous start recorded ({} when nothing was started there)."""
    if not path.exists():
        return {}
    state = json.loads(path.read_text())
    return state if isinstance(state, dict) else {}


def write_state(path: Path, **state: Any) -> None:
    path.write_text(json.dumps(state))


def wait_ready(server: ServerProcess, ready: Callable[[], bool], *, timeout: float, interval: float) -> str | None:
    """Poll `ready()` until it holds. On an exit or the timeout, kill the server and say which it was."""
    deadline = time.monotonic() + timeout
    while not ready():
        exited = server.proc is not None and server.proc.poll() is not None
        if exited or time.monotonic() > deadline:
            server.kill()
            return "exited" if exited else f"was not ready within {timeout:.0f}s"
        time.sleep(interval)
    return None


def run_foreground(server: ServerProcess, banner: str) -> None:
    """Print the banner and keep the server up until Ctrl-C or SIGTERM, then stop it."""
    print(banner, flush=True)
    # SIGTERM (systemd, `timeout`, a closing terminal) stops the server as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while server.alive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@dataclass(frozen=True)
class Launcher:
    """One launcher's command line: `start --DIR d [--port N]`, `stop --DIR d`, `run [--port N] [--DIR d]`."""

    doc: str
    dir_flag: str
    """`--data-dir` (Kafka) or `--store-dir` (NATS)."""
    default_dir: Path
    default_port: int
    error: type[Exception]
    start: Callable[[Path, int | None], ServerProcess]
    address: Callable[[Any], str]
    """What `start` prints: the bootstrap address or the URL."""
    from_state: Callable[[Path], ServerProcess]
    banner: Callable[[Any, Path], str]
    extra: dict[str, tuple[str, Callable[[], object]]] = field(default_factory=dict)
    """More commands with no arguments: name -> (help, what it runs; its result is printed)."""

    def main(self, argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(description=self.doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        sub = parser.add_subparsers(dest="command", required=True)
        for name, (help_text, _) in self.extra.items():
            sub.add_parser(name, help=help_text)
        dest = self.dir_flag.removeprefix("--").replace("-", "_")
        start = sub.add_parser("start", help="start a detached server; prints its address")
        start.add_argument(self.dir_flag, type=Path, required=True)
        start.add_argument("--port", type=int)
        stop = sub.add_parser("stop", help="stop the server a `start` left running")
        stop.add_argument(self.dir_flag, type=Path, required=True)
        run = sub.add_parser("run", help="run in the foreground until Ctrl-C")
        run.add_argument("--port", type=int, default=self.default_port)
        run.add_argument(self.dir_flag, type=Path, default=self.default_dir)
        args = parser.parse_args(argv)
        try:
            if args.command in self.extra:
                print(self.extra[args.command][1]())
            elif args.command == "start":
                print(self.address(self.start(getattr(args, dest), args.port)))
            elif args.command == "stop":
                server = self.from_state(getattr(args, dest))
                if server.alive():
                    server.stop()
            else:
                server = self.start(getattr(args, dest), args.port)
                run_foreground(server, self.banner(server, getattr(args, dest)))
        except self.error as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
