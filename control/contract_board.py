"""The contract as control last published it, for data-plane services that long-poll control's API.

`GET /api/v1/contract?after=<generation>` (control/server.py) answers at once when the board holds
another generation and otherwise waits, bounded, for the next `publish`. Only the newest contract is
kept: a data-plane service that missed generations needs only the last one, since each is complete.
`close` answers every waiting request (304) so a shutdown does not wait out their long polls.
"""

from __future__ import annotations

import asyncio

from core.contract import Contract


class ContractBoard:
    def __init__(self) -> None:
        self._contract: Contract | None = None
        self._changed = asyncio.Condition()
        self._closed = False

    @property
    def contract(self) -> Contract | None:
        return self._contract

    async def publish(self, contract: Contract) -> None:
        async with self._changed:
            self._contract = contract
            self._changed.notify_all()

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
