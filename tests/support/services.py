"""Nerve as separate processes (python -m control / ingress / dispatcher), as compose runs it.

Used by crash tests: each service can be killed with SIGKILL and started again with the same
settings, while the test produces events and a real loopback subscriber records what arrives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.launchers import free_port


def http_json(url: str, body: Any = None, timeout: float = 30.0, token: str = "") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def api_token(state_dir: Path) -> str:
    """The token `python -m control` generated into its state dir on first start."""
    return (state_dir / "token").read_text().strip()


class Service:
    def __init__(self, name: str, module: str, args: list[str], workdir: Path, port: int) -> None:
        self.name, self.module, self.args, self.workdir, self.port = name, module, args, workdir, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{name}.log"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ},
            )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, nothing flushed, no offsets committed on the way out."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wait_ready(self, min_generation: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, body = http_json(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                if status == 200 and (body or {}).get("generation", 1) >= min_generation:
                    return
            except OSError:
                pass
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)


class Cluster:
    """control + ingress + dispatcher on one backend, following one contract file."""

    def __init__(self, workdir: Path, backend: str, connection: str) -> None:
        self.workdir = workdir
        self.backend = backend
        state = workdir / "state"
        contract = state / "contract.json"
        flag = ["--kafka-bootstrap", connection] if backend == "kafka" else ["--nats-url", connection]
        api, ingress, dispatcher = free_port(), free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{api}"
        self.ingress_url = f"http://127.0.0.1:{ingress}"
        self.control = Service(
            "control",
            "control",
            [
                "--host",
                "127.0.0.1",
                "--port",
                str(api),
                "--state-dir",
                str(state),
                "--ingress-base-url",
                self.ingress_url,
                "--backend",
                backend,
                *flag,
            ],
            workdir,
            api,
        )
        common = ["--host", "127.0.0.1", "--contract", str(contract), *flag]
        self.ingress = Service("ingress", "ingress", [*common, "--port", str(ingress)], workdir, ingress)
        self.dispatcher = Service("dispatcher", "dispatcher", [*common, "--port", str(dispatcher)], workdir, dispatcher)

    def start(self) -> None:
        for service in (self.control, self.ingress, self.dispatcher):
            service.start()
        self.control.wait_ready()

    def apply(self, *manifests: dict[str, Any]) -> int:
        """Apply, then wait until both data-plane services run the resulting contract generation."""
        status, body = http_json(f"{self.api_url}/api/v1/apply", {"items": list(manifests)},
                                 token=api_token(self.workdir / "state"))
        assert status == 200, body
        generation = self.generation()
        self.ingress.wait_ready(generation)
        self.dispatcher.wait_ready(generation)
        return generation

    def generation(self) -> int:
        contract = json.loads((self.workdir / "state" / "contract.json").read_text())
        return int(contract["generation"])

    def stop(self) -> None:
        for service in (self.ingress, self.dispatcher, self.control):
            service.stop()
