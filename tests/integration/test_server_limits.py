"""Held and slow connections against the ingress (issue 9, defect 9): raw loopback sockets, as an attacker
holds them, against the embedded stack's real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.connections import CLOSED
from ingress.settings import IngressSettings
from tests.support.stack import Stack, event, running_stack

BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: ns1}
"""


def _address(stack: Stack) -> tuple[str, int]:
    host, port = stack.ingress.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing; fails when it keeps the connection open past `seconds`."""
    received = b""
    async with asyncio.timeout(seconds):
        while chunk := await reader.read(4096):
            received += chunk
    return received


async def test_held_idle_sockets_do_not_lock_producers_out(tmp_path: Path) -> None:
    evicted = CLOSED.labels("ingress", "evicted_idle")
    before = evicted._value.get()
    settings = IngressSettings(port=0, max_connections=64)
    async with running_stack(tmp_path, ingress=settings) as stack:
        await stack.apply(BROKER)
        held = [await asyncio.open_connection(*_address(stack)) for _ in range(300)]
        try:
            await asyncio.sleep(0.2)
            started = asyncio.get_running_loop().time()
            assert await stack.send("/ns1/default", event("e1")) == 202
            assert asyncio.get_running_loop().time() - started < 1.0
            # The oldest idle sockets made room; the server keeps no more than its limit.
            assert evicted._value.get() - before >= 300 - 64
            assert await _closed_within(held[0][0], 1.0) == b""
        finally:
            for _, writer in held:
                writer.close()


async def test_idle_and_trickling_connections_are_closed_after_the_timeout(tmp_path: Path) -> None:
    settings = IngressSettings(port=0, idle_timeout_s=0.5)
    async with running_stack(tmp_path, ingress=settings) as stack:
        await stack.apply(BROKER)
        idle_reader, idle = await asyncio.open_connection(*_address(stack))
        slow_reader, slow = await asyncio.open_connection(*_address(stack))
        slow.write(b"POST /ns1/default HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:
            for i in range(40):
                slow.write(b"x-slow-%d: y\r\n" % i)
                await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        try:
            started = asyncio.get_running_loop().time()
            assert await _closed_within(idle_reader, 2.0) == b""
            assert await _closed_within(slow_reader, 2.0) == b""
            assert asyncio.get_running_loop().time() - started < 1.5
            # A producer is still served.
            assert await stack.send("/ns1/default", event("e1")) == 202
        finally:
            trickling.cancel()
            idle.close()
            slow.close()


async def test_a_body_that_does_not_arrive_in_time_closes_the_connection(tmp_path: Path) -> None:
    settings = IngressSettings(port=0, body_timeout_s=0.5)
    async with running_stack(tmp_path, ingress=settings) as stack:
        await stack.apply(BROKER)
        reader, writer = await asyncio.open_connection(*_address(stack))
        writer.write(b"POST /ns1/default HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\nce-id: 1\r\n"
                     b"ce-source: /s\r\nce-type: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"a\": ")
        try:
            assert await _closed_within(reader, 2.0) == b""
        finally:
            writer.close()


async def test_when_every_connection_is_busy_a_new_one_gets_503(tmp_path: Path) -> None:
    settings = IngressSettings(port=0, max_connections=2, body_timeout_s=5.0)
    async with running_stack(tmp_path, ingress=settings) as stack:
        await stack.apply(BROKER)
        busy = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection(*_address(stack))
            writer.write(b"POST /ns1/default HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            busy.append((reader, writer))
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection(*_address(stack))
        try:
            answer = await _closed_within(reader, 2.0)
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert b"too many connections" in answer
        finally:
            writer.close()
            for _, w in busy:
                w.close()
