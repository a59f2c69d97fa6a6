"""The ApiServerSource adapter on a real SQLite store: a watch that falls behind what the store keeps
lists again and goes on (Knative's reflector relists after 410 Gone), sending nothing for what it missed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from channels.registry import BackendPool, BackendSettings
from control.store.sqlite import CHANGES_KEPT, SqliteStore
from core.contract import Contract, Egress, Reference, Source
from sources.service import Sources
from tests.support.receiver import Answer, Receiver
from tests.support.stack import eventually


def _contract(url: str) -> Contract:
    ref = Reference("u1", "ns1", "watcher", "ApiServerSource")
    egress = Egress(uid="u1", reference=ref, consumer_group="", destination=url, generation=1)
    config = {"source": "http://api", "mode": "Reference", "owner": None, "filters": [], "namespaces": ["ns1"],
              "namespaceSelector": None, "allNamespaces": False, "ceOverrides": {},
              "resources": [{"apiVersion": "v1", "kind": "ConfigMap", "namespaced": True, "selector": None}]}
    return Contract(1, (), (Source("u1", ref, egress, config),))


async def test_a_watch_that_fell_behind_lists_again_and_goes_on(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def slow_first(index: int, _: object) -> Answer:
        if index == 0:
            await release.wait()
        return Answer(202)

    receiver = Receiver(slow_first)
    url = await receiver.start()
    store = SqliteStore(tmp_path / "nerve.db")
    sources = Sources(BackendPool(BackendSettings()))
    sources.watch = store
    await sources.start()
    try:
        await sources.apply(_contract(url))
        await store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first", "namespace": "ns1"},
                            "data": {"n": "0"}})
        await receiver.wait_for(1)  # held by the sink: the watch waits on it while the store moves on
        busy = await store.create({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "busy", "namespace": "ns1"}, "data": {"n": "0"}})
        for n in range(CHANGES_KEPT + 200):
            busy = await store.update({**busy, "data": {"n": str(n + 1)}})
        release.set()
        await eventually(lambda: "fell behind" in caplog.text)  # said in the log, then listed again
        await store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after", "namespace": "ns1"}})
        await receiver.wait_for(2)  # `first`, then (after the relist) only `after`
        await receiver.settle()
        # The watch of `first`'s time is gone: the kind is listed again and what changed meanwhile (the
        # 1,200 updates of `busy`) is not replayed; the next change is sent.
        assert [e.attributes["name"] for e in receiver.events] == ["first", "after"]
    finally:
        await sources.stop()
        await store.close()
        await receiver.stop()

