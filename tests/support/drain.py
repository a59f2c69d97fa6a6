"""The drain scenario every Nerve HTTP server must pass, whichever HTTP stack serves it: one request
whose body is still arriving when the shutdown starts, one idle keep-alive connection, one newcomer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

HALF_SENT = b"Content-Length: 10\r\n\r\n12345"


async def drain_with_a_request_half_sent(port: int, head: bytes, cleanup: Callable[[], Awaitable[None]]) -> bytes:
    """Send `head` plus half a 10-byte body, start `cleanup`, and check that the server stops accepting and
    closes the idle connection; then send the rest and return the answer the drain let through."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + HALF_SENT)
    await writer.drain()
    await asyncio.sleep(0.2)
    stopping = asyncio.ensure_future(cleanup())
    await asyncio.sleep(0.3)
    with pytest.raises(OSError):  # no longer accepting
        await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"67890")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    await asyncio.wait_for(stopping, 5)
    assert await asyncio.wait_for(idle_reader.read(), 1) == b""  # closed with the rest: it had sent nothing
    writer.close()
    idle_writer.close()
    return answer
