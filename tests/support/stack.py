"""The whole embedded Nerve (control, ingress, dispatcher) in the test's own event loop, on port 0."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from core.events import Event, to_binary
from dispatcher.settings import DispatcherSettings
from ingress.settings import IngressSettings
from nerve.up import Embedded, UpSettings


class Stack:
    def __init__(self, nerve: Embedded, session: aiohttp.ClientSession) -> None:
        self.nerve = nerve
        self.session = session

    @property
    def ingress(self) -> str:
        return self.nerve.ingress_url

    @property
    def api(self) -> str:
        return self.nerve.api_url

    @property
    def token(self) -> str:
        return self.nerve.token

    @property
    def cli_env(self) -> dict[str, str]:
        """The environment a `nerve` CLI subprocess reaches this stack's control API with."""
        return {**os.environ, "NERVE_SERVER": self.api, "NERVE_TOKEN": self.token}

    async def apply(self, *manifests: dict[str, Any] | str) -> list[dict[str, Any]]:
        items: list[Any] = []
        for m in manifests:
            items += [d for d in yaml.safe_load_all(m) if d] if isinstance(m, str) else [m]
        async with self.session.post(f"{self.api}/api/v1/apply", json={"items": items}) as response:
            body = await response.json()
            if response.status != 200:
                raise AssertionError(f"apply failed {response.status}: {body}")
            result: list[dict[str, Any]] = body["items"]
            return result

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        async with self.session.get(f"{self.api}/api/v1/resources/{kind}/{namespace}/{name}") as response:
            obj: dict[str, Any] = await response.json()
            return obj

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        async with self.session.delete(f"{self.api}/api/v1/resources/{kind}/{namespace}/{name}") as response:
            assert response.status == 200, await response.text()

    async def send(self, path: str, event: Event, headers: dict[str, str] | None = None) -> int:
        hdrs, body = to_binary(event)
        hdrs.update(headers or {})
        async with self.session.post(f"{self.ingress}{path}", data=body, headers=hdrs) as response:
            await response.read()
            return response.status


@asynccontextmanager
async def running_stack(state_dir: Path, **overrides: Any) -> AsyncIterator[Stack]:
    settings = UpSettings(
        state_dir=state_dir, ingress_port=overrides.pop("ingress_port", 0), api_port=0,
        resync_seconds=overrides.pop("resync_seconds", 2.0),
        ingress=overrides.pop("ingress", IngressSettings(port=0)),
        dispatcher=overrides.pop("dispatcher", DispatcherSettings(drain_timeout_s=2.0)),
        **overrides,
    )
    nerve = Embedded(settings)
    await nerve.start()
    try:
        # The session carries the control API's token, as the CLI does, so tests call /api/ like a user.
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {nerve.token}"}) as session:
            yield Stack(nerve, session)
    finally:
        await nerve.stop()


def event(i: int | str = 1, *, type_: str = "dev.nerve.test", source: str = "/test", data: bytes | None = b"{}",
          **extensions: str | int | bool) -> Event:
    attributes: dict[str, str | int | bool] = {"specversion": "1.0", "id": str(i), "source": source, "type": type_}
    if data is not None:
        attributes["datacontenttype"] = "application/json"
    attributes.update(extensions)
    return Event(attributes, data)


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Poll an async or sync predicate until it is true (for state that settles, not for timing)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
