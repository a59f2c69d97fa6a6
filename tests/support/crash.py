"""What the crash tests share: a producer that records every answer, and the kill-restart of a dispatcher."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support.receiver import Receiver
from tests.support.services import Cluster


class Producer:
    """Sends numbered events with bounded concurrency; records which got 202 and which failed how."""

    def __init__(self, url: str, total: int, concurrency: int = 32) -> None:
        self.url, self.total, self.concurrency = url, total, concurrency
        self.accepted: set[str] = set()
        self.refused: dict[str, str] = {}
        self.progress = asyncio.Event()
        self.milestone = total

    async def send(self, session: aiohttp.ClientSession, i: int) -> str:
        """POST event e<i>; the status, or the name of the error when no answer came."""
        headers = {
            "ce-specversion": "1.0",
            "ce-id": f"e{i}",
            "ce-source": "/crash",
            "ce-type": "crash.test",
            "Content-Type": "application/json",
        }
        try:
            async with session.post(self.url, data=b'{"n": %d}' % i, headers=headers) as r:
                await r.read()
                return str(r.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    async def run(self) -> None:
        queue = iter(range(self.total))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def worker() -> None:
                for i in queue:
                    outcome = await self.send(session, i)
                    if outcome == "202":
                        self.accepted.add(f"e{i}")
                    else:
                        self.refused[f"e{i}"] = outcome
                        await asyncio.sleep(0.05)
                    if len(self.accepted) + len(self.refused) >= self.milestone:
                        self.progress.set()

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def retry_refused(self) -> dict[str, str]:
        """Send every refused event once more, as a producer that saw no 202 does; the outcomes by id."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            return {event_id: await self.send(session, int(event_id[1:])) for event_id in sorted(self.refused)}


async def all_delivered(receiver: Receiver, accepted: set[str], timeout: float = 180.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not accepted <= set(receiver.ids):
        if asyncio.get_running_loop().time() > deadline:
            missing = accepted - set(receiver.ids)
            raise AssertionError(f"{len(missing)} accepted events never delivered, e.g. {sorted(missing)[:5]}")
        await asyncio.sleep(0.2)


async def kill_dispatcher_mid_run(cluster: Cluster, producer: Producer, *, graceful: bool = False) -> None:
    """Run `producer`; once it reaches its milestone, kill -9 the dispatcher (`graceful`: SIGTERM, and it
    drains and commits on its way out), start it again, let it finish."""
    sending = asyncio.create_task(producer.run())
    await asyncio.wait_for(producer.progress.wait(), 120)
    await asyncio.to_thread(cluster.dispatcher.stop if graceful else cluster.dispatcher.kill)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(cluster.dispatcher.start)
    await asyncio.to_thread(cluster.dispatcher.wait_ready)
    await sending
