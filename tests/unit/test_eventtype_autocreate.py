"""EventType auto-create's data-plane half without a network: names, the manifest, the queue and seen-set."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from control.api import kinds
from control.api.admission import AdmissionSettings, admit
from core.contract import Reference
from core.events import Event
from core.eventtypes import (
    DROPPED,
    FAILED,
    REFERENCE_API_VERSIONS,
    AutoCreate,
    EventTypeSettings,
    auto_created,
    dns1123_subdomain,
    problems,
)

BROKER = Reference("uid-b", "ns1", "default", "Broker")


def _event(type_: str = "com.example.a", source: str = "/a", **extra: str) -> Event:
    return Event({"specversion": "1.0", "id": "1", "type": type_, "source": source, **extra}, b"{}")


class Recorded:
    def __init__(self, fail: int = 0) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def record(self, eventtypes: Sequence[dict[str, Any]]) -> None:
        await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise RuntimeError("control API down")
        self.batches.append(list(eventtypes))

    @property
    def names(self) -> list[str]:
        return [et["metadata"]["name"] for batch in self.batches for et in batch]


def test_reference_api_versions_are_those_control_serves() -> None:
    for kind, api_version in REFERENCE_API_VERSIONS.items():
        found = kinds.for_manifest(api_version, kind)
        assert found is not None and found.api_version == api_version, kind


def test_the_manifest_is_knatives_and_admission_takes_it_as_it_is() -> None:
    et = auto_created(_event(dataschema="https://s/a"), BROKER)
    digest = hashlib.md5(b"com.example.a/ans1default", usedforsecurity=False).hexdigest()
    assert et["metadata"]["name"] == f"et-default-{digest}"
    assert et["metadata"]["ownerReferences"] == [
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default", "uid": "uid-b"}]
    assert et["spec"]["attributes"] == [
        {"name": "type", "required": True, "value": "com.example.a"},
        {"name": "source", "required": True, "value": "/a"},
        {"name": "schemadata", "required": True, "value": "https://s/a"},
        {"name": "specversion", "required": True, "value": "1.0"},
        {"name": "id", "required": True},
    ]
    admitted = admit(et, None, AdmissionSettings())
    assert admitted.obj["spec"] == et["spec"]


def test_names_are_dns_1123_whatever_the_reference_is_called() -> None:
    assert dns1123_subdomain("et-My_Broker-abc") == "et-mybroker-abc"
    assert dns1123_subdomain("-x-") == "k-x-k"
    assert len(dns1123_subdomain("a" * 300)) == 243


async def test_a_pair_is_queued_once_and_written_in_the_background() -> None:
    recorder = Recorded()
    auto = AutoCreate(max_pending=10)
    for _ in range(5):
        auto.observe(_event(), BROKER)
    auto.observe(_event(source="/b"), BROKER)
    auto.observe(_event(), Reference("uid-t", "ns1", "t1", "Trigger"))
    auto.start(recorder)
    await asyncio.wait_for(auto.idle(), 5)
    await auto.stop()
    assert len(recorder.names) == 3 and len(set(recorder.names)) == 3
    assert [et["spec"]["reference"]["kind"] for batch in recorder.batches for et in batch] == [
        "Broker", "Broker", "Trigger"]


async def test_a_full_queue_drops_and_counts_and_a_later_event_tries_again() -> None:
    recorder = Recorded()
    auto = AutoCreate(max_pending=2)
    before = DROPPED._value.get()
    for i in range(4):
        auto.observe(_event(type_=f"t{i}"), BROKER)
    assert DROPPED._value.get() - before == 2
    auto.start(recorder)
    await asyncio.wait_for(auto.idle(), 5)
    auto.observe(_event(type_="t3"), BROKER)  # dropped before, so not seen: queued now
    await asyncio.wait_for(auto.idle(), 5)
    await auto.stop()
    assert [et["spec"]["attributes"][0]["value"] for batch in recorder.batches for et in batch] == ["t0", "t1", "t3"]


async def test_a_failed_write_is_counted_and_the_pair_tried_again_at_its_next_event() -> None:
    recorder = Recorded(fail=1)
    auto = AutoCreate()
    before = FAILED._value.get()
    auto.start(recorder)
    auto.observe(_event(), BROKER)
    await asyncio.wait_for(auto.idle(), 5)
    assert FAILED._value.get() - before == 1 and recorder.names == []
    auto.observe(_event(), BROKER)
    await asyncio.wait_for(auto.idle(), 5)
    await auto.stop()
    assert len(recorder.names) == 1


async def test_the_seen_set_is_bounded() -> None:
    recorder = Recorded()
    auto = AutoCreate(max_pending=100, max_seen=3)
    auto.start(recorder)
    for i in range(5):
        auto.observe(_event(type_=f"t{i}"), BROKER)
    await asyncio.wait_for(auto.idle(), 5)
    auto.observe(_event(type_="t0"), BROKER)  # forgotten when the set was cleared: looked up again
    await asyncio.wait_for(auto.idle(), 5)
    await auto.stop()
    assert len(recorder.names) == 6


def test_a_separate_service_needs_a_control_url_to_auto_create() -> None:
    assert problems(EventTypeSettings(), "") == []
    assert "--control-url" in problems(EventTypeSettings(eventtype_auto_create=True), "")[0]
    assert problems(EventTypeSettings(eventtype_auto_create=True), "http://control:8081") == []
