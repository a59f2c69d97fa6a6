"""The contract as control last published it, for data-plane services that long-poll control's API.

`GET /api/v1/contract?after=<generation>` (control/server.py) answers at once when the board holds
another generation and otherwise waits, bounded, for the next `publish`. Only the newest contract is
kept: a data-plane service that missed generations needs only the last one, since each is complete.
`close` answers every waiting request (304) so a shutdown does not wait out their long polls.

The answer's bytes are made once per generation, not once per request (a 10,000-Trigger contract is 8 MB
of JSON: every follower asks for the same generation), and gzipped once, in a thread, for the followers
that accept it (aiohttp's client does by default): about 1/15th of the bytes on the wire.
"""

from __future__ import annotations

import asyncio
import gzip

from core.contract import Contract

GZIP_LEVEL = 6
"""zlib's default: within a few per cent of level 9's size at a fraction of its time."""


class ContractBoard:
    def __init__(self) -> None:
        self._contract: Contract | None = None
        self._changed = asyncio.Condition()
        self._closed = False
        self._encoded: dict[bool, asyncio.Future[bytes]] = {}
        self._encoded_generation = -1

    @property
    def contract(self) -> Contract | None:
        return self._contract

    async def publish(self, contract: Contract) -> None:
        async with self._changed:
            self._contract = contract
            self._changed.notify_all()

    async def body(self, contract: Contract, *, gzipped: bool) -> bytes:
        """The contract's JSON (gzipped when asked), made once for its generation and shared by every request."""
        if contract.generation != self._encoded_generation:
            self._encoded, self._encoded_generation = {}, contract.generation
        made = self._encoded.get(gzipped)
        if made is None:
            made = self._encoded[gzipped] = asyncio.ensure_future(self._encode(contract, gzipped))
        return await asyncio.shield(made)

    async def _encode(self, contract: Contract, gzipped: bool) -> bytes:
        plain = await self.body(contract, gzipped=False) if gzipped else contract.dumps()
        return await asyncio.to_thread(gzip.compress, plain, GZIP_LEVEL, mtime=0) if gzipped else plain

    async def after(self, generation: int, timeout_s: float) -> Contract | None:
        """A contract whose generation is not `generation`, or None after `timeout_s` (or on close)."""

        def ready() -> bool:
            return self._closed or (self._contract is not None and self._contract.generation != generation)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), timeout_s)
            except TimeoutError:
                return None
            return None if self._closed else self._contract

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()
