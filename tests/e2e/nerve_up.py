"""A real `nerve up` process and the `nerve` CLI against it, for async e2e tests with an in-loop receiver."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.support.launchers import free_port

NERVE = str(Path(sys.executable).with_name("nerve"))


def _healthy(url: str) -> None:
    with urllib.request.urlopen(url, timeout=1):
        pass


class NerveUp:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.api = free_port()
        self.ingress = free_port()
        self.env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{self.api}"}
        self.log = workdir / "nerve-up.log"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, *args: str) -> None:
        """`nerve up` on this instance's ports, with `args` (more flags) after them."""
        with self.log.open("wb") as out:
            self._proc = await asyncio.create_subprocess_exec(
                NERVE, "up", "--ingress-port", str(self.ingress), "--api-port", str(self.api), *args,
                cwd=self.workdir, stdout=out, stderr=asyncio.subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                await asyncio.to_thread(_healthy, f"http://127.0.0.1:{self.api}/healthz")
                return
            except OSError:
                if time.monotonic() > deadline or self._proc.returncode is not None:
                    raise AssertionError(f"nerve up did not come up:\n{self.log.read_text()}") from None
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        self._proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self._proc.wait(), 20)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()

    async def nerve(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        """The CLI, run in the directory `nerve up` runs in (it finds the API token there)."""
        proc = await asyncio.create_subprocess_exec(
            NERVE, *args, env=self.env, cwd=self.workdir, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(stdin.encode() if stdin else None)
        return proc.returncode or 0, out.decode(), err.decode()

    async def apply(self, *files: Path | str) -> str:
        args = [a for f in files for a in ("-f", str(f) if isinstance(f, Path) else "-")]
        stdin = next((f for f in files if isinstance(f, str)), None)
        code, out, err = await self.nerve("apply", *args, stdin=stdin)
        assert code == 0, err
        return out

    def _api(self, path: str) -> tuple[int, bytes]:
        token = (self.workdir / ".nerve" / "token").read_text().strip()
        request = urllib.request.Request(f"http://127.0.0.1:{self.api}{path}",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    async def _json(self, path: str) -> Any:
        status, body = await asyncio.to_thread(self._api, path)
        if status == 404:
            return None
        assert status == 200, body
        return json.loads(body)

    # Polling goes to the control API directly: a CLI process takes seconds to start on a loaded machine.
    async def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        obj: dict[str, Any] | None = await self._json(f"/api/v1/resources/{kind}/{namespace}/{name}")
        return obj

    async def items(self, kind: str, namespace: str = "default") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self._json(f"/api/v1/resources/{kind}?namespace={namespace}"))["items"]
        return items

    async def logs(self, namespace: str, pod: str) -> str:
        """What a local Pod wrote (the control API's logs endpoint, as `kubectl logs` reads it)."""
        status, body = await asyncio.to_thread(self._api, f"/api/v1/logs/{namespace}/{pod}")
        assert status == 200, body
        return body.decode()

    async def pods(self, namespace: str = "default", **labels: str) -> list[dict[str, Any]]:
        """The Pods (not being deleted) whose labels include `labels`, oldest first."""
        pods = [p for p in await self.items("pods", namespace)
                if labels.items() <= (p["metadata"].get("labels") or {}).items()
                and not p["metadata"].get("deletionTimestamp")]
        return sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp")))


@asynccontextmanager
async def nerve_up(workdir: Path, *args: str) -> AsyncIterator[NerveUp]:
    up = NerveUp(workdir)
    await up.start(*args)
    try:
        yield up
    finally:
        await up.stop()
