"""`python -m ingress --workers 2`: two processes answer on one port, each answer names its worker, a killed
worker is started again, and SIGTERM to the parent stops every worker. No backend is needed: the contract
names no Broker, so every event is answered 404 (by whichever worker the kernel picked)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from tests.support.launchers import free_port


async def _answered_by(session: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "Connection": "close"}
    async with session.post(url, data=b"{}", headers=headers) as response:
        await response.read()
        return response.status, int(response.headers["Nerve-Worker"])


def _workers(parent: psutil.Process) -> set[int]:
    found = set()
    for child in parent.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            pass
    return found


async def test_two_ingress_workers_share_one_port_and_stop_together(tmp_path: Path) -> None:
    contract = tmp_path / "contract.json"
    contract.write_text(json.dumps({"generation": 1, "resources": []}))
    port = free_port()
    log = (tmp_path / "ingress.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingress", "--workers", "2", "--port", str(port), "--contract", str(contract),
        stdout=log, stderr=log)
    parent = psutil.Process(proc.pid)
    url = f"http://127.0.0.1:{port}/ns1/nowhere"
    try:
        async with aiohttp.ClientSession() as session:
            seen: set[int] = set()
            deadline = time.monotonic() + 60
            while len(seen) < 2:
                assert proc.returncode is None and time.monotonic() < deadline, (tmp_path / "ingress.log").read_text()
                try:
                    status, pid = await _answered_by(session, url)
                except aiohttp.ClientError:  # not listening yet
                    await asyncio.sleep(0.2)
                    continue
                assert status == 404
                seen.add(pid)
            assert seen == _workers(parent)

            killed = min(seen)
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 30
            replacement: set[int] = set()
            while not replacement:
                assert time.monotonic() < deadline, "the killed worker was not started again"
                try:
                    replacement = {(await _answered_by(session, url))[1]} - seen
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            assert replacement <= _workers(parent)
        everyone = _workers(parent)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await asyncio.sleep(0.3)
        assert [pid for pid in everyone if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE] == []
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
