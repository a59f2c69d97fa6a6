"""`nerve up --workers 2` on real Kafka: the ingress runs in two worker processes of its own on one port.

What a user sees: every 202 says which worker answered (`Nerve-Worker: <pid>`), both workers answer,
every accepted event reaches the subscriber, a killed worker is replaced and the replacement answers,
and Ctrl-C (SIGINT) stops `nerve up` with every worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.support import manifests
from tests.support.launchers import free_port
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.timeout(180)]

NERVE = str(Path(sys.executable).with_name("nerve"))


async def _post(session: aiohttp.ClientSession, url: str, i: int) -> tuple[int, str]:
    headers = {"ce-specversion": "1.0", "ce-id": f"w{i}", "ce-source": "/workers", "ce-type": "dev.nerve.w",
               "Content-Type": "application/json", "Connection": "close"}  # a new connection: any worker
    async with session.post(url, data=b'{"n": 1}', headers=headers) as response:
        await response.read()
        return response.status, response.headers.get("Nerve-Worker", "")


def _workers(up: psutil.Process) -> set[int]:
    """The running ingress workers among `nerve up`'s children (a killed one not yet reaped is none)."""
    found = set()
    for child in up.children():
        try:
            if "ingress" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:  # a zombie, or gone
            pass
    return found


async def test_nerve_up_with_two_workers_accepts_on_both_restarts_one_and_stops_all(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    api, ingress = free_port(), free_port()
    run = uuid.uuid4().hex[:8]  # topics and groups of this run only: a reused Kafka keeps older ones
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}
    log = (tmp_path / "nerve-up.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        NERVE, "up", "--backend", "kafka", "--kafka-bootstrap", kafka_bootstrap, "--workers", "2",
        "--topic-template", f"w-{run}-{{namespace}}-{{name}}", "--consumer-group-template", f"w-{run}-{{name}}",
        "--ingress-port", str(ingress), "--api-port", str(api), cwd=tmp_path, stdout=log, stderr=log)
    receiver = Receiver()
    await receiver.start()
    url = f"http://127.0.0.1:{ingress}/ns1/default"
    try:
        up = psutil.Process(proc.pid)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while len(_workers(up)) < 2 or not await _healthy(session, api):
                assert proc.returncode is None and time.monotonic() < deadline, (tmp_path / "nerve-up.log").read_text()
                await asyncio.sleep(0.2)
            first = _workers(up)
            items = json.dumps({"apiVersion": "v1", "kind": "List",
                                "items": [manifests.broker(), manifests.trigger("t1", receiver.url)]})
            apply = await asyncio.create_subprocess_exec(NERVE, "apply", "-f", "-", env=env, cwd=tmp_path,
                                                         stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await apply.communicate(items.encode())
            assert apply.returncode == 0, err.decode()

            answers = [await _post(session, url, i) for i in range(40)]
            assert {status for status, _ in answers} == {202}, answers
            answered_by = {int(pid) for _, pid in answers}
            assert answered_by == first  # both workers took events, and only they did

            await receiver.wait_for(40, timeout=60)
            assert sorted(receiver.ids) == sorted(f"w{i}" for i in range(40))

            killed = min(first)
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while len(_workers(up) - {killed}) < 2:
                assert time.monotonic() < deadline, "the killed worker was not started again"
                await asyncio.sleep(0.2)
            (replacement,) = _workers(up) - first
            seen: set[int] = set()
            i, deadline = 40, time.monotonic() + 30
            while replacement not in seen and time.monotonic() < deadline:  # it serves once it has started
                status, pid = await _post(session, url, i)
                assert status == 202  # the surviving worker answers meanwhile
                seen.add(int(pid))
                i += 1
                await asyncio.sleep(0.05)
            assert replacement in seen
            await receiver.wait_for(i, timeout=60)
        everyone = _workers(up)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await asyncio.sleep(0.5)
        assert [pid for pid in everyone if psutil.pid_exists(pid) and
                psutil.Process(pid).status() != psutil.STATUS_ZOMBIE] == []
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await receiver.stop()
        log.close()


async def _healthy(session: aiohttp.ClientSession, api: int) -> bool:
    try:
        async with session.get(f"http://127.0.0.1:{api}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False
