"""EventType auto-create: the data plane tells control which (type, source) pairs it saw, off the hot path.

Knative's `eventtype-auto-create` feature (`ev:pkg/eventtype/eventtypes.go`): an event accepted at a
Broker (reference: the Broker) or a channel (the channel), and a reply from a Trigger's subscriber (the
Trigger) or a Subscription's (the Subscription), creates a v1beta3 EventType for its (type, source) if
there is none, named `et-<refName>-<md5(type+source+namespace+refName)>`, owned by the referenced object.

Cost on the receive path (`AutoCreate.observe`): one tuple built and looked up in a set. A pair not seen
yet goes on a bounded queue (full: dropped, counted in nerve_eventtype_autocreate_dropped_total, a DEBUG
line; a later event of that pair tries again) and a background task writes what it takes from the queue
through an `EventTypeRecorder`: in `nerve up` control's store (control/autocreate.py), for the separate
services the control API (`HttpRecorder`). Existing EventTypes are left as they are (Knative ignores
already-exists), and a pair stays seen once written: an auto-created EventType deleted by hand comes back
after a restart of the process that saw it, not at its next event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from prometheus_client import Counter

from core.contract import Reference
from core.events import Event
from core.settings import setting

log = logging.getLogger("nerve.eventtypes")

API_VERSION = "eventing.knative.dev/v1beta3"
DESCRIPTION = "Event Type auto-created by controller"
REFERENCE_API_VERSIONS = {
    "Broker": "eventing.knative.dev/v1",
    "Trigger": "eventing.knative.dev/v1",
    "Subscription": "messaging.knative.dev/v1",
    "InMemoryChannel": "messaging.knative.dev/v1",
    "KafkaChannel": "messaging.knative.dev/v1beta1",
    "NatsJetStreamChannel": "messaging.knative.dev/v1alpha1",
}
"""The apiVersion of each kind an auto-created EventType references (the contract names kinds only);
tests/unit/test_eventtype_autocreate.py checks it against control's kind registry."""

DROPPED = Counter("nerve_eventtype_autocreate_dropped", "New (type, source) pairs not queued for EventType "
                  "auto-create because the queue was full (a later event of the pair tries again)")
FAILED = Counter("nerve_eventtype_autocreate_failed", "Auto-created EventTypes that could not be written "
                 "(a later event of the pair tries again)")


@dataclass(frozen=True, slots=True)
class EventTypeSettings:
    eventtype_auto_create: bool = setting(
        False, "--eventtype-auto-create", "NERVE_EVENTTYPE_AUTO_CREATE",
        "Create an EventType for each new (type, source) accepted at a Broker or channel and each new reply "
        "from a Trigger's or Subscription's subscriber (Knative's eventtype-auto-create feature flag).",
        off_flag="--no-eventtype-auto-create")
    max_pending: int = 1000
    """New pairs queued at most; past it they are dropped (and tried again at a later event)."""
    max_seen: int = 100_000
    """Pairs remembered as written; past it the memory is cleared (a pair costs one store lookup again)."""


def problems(settings: EventTypeSettings, control_url: str) -> list[str]:
    """A separate service asked to auto-create without a control API to write to (`--control-url`, a
    service setting of core/cli_settings.py shared with `--contract-from control`)."""
    if settings.eventtype_auto_create and not control_url:
        return ["--eventtype-auto-create needs --control-url (NERVE_CONTROL_URL): the control API to write to"]
    return []


_NOT_SUBDOMAIN = re.compile(r"[^a-z0-9.-]")


def dns1123_subdomain(name: str) -> str:
    """knative.dev/eventing's utils.ToDNS1123Subdomain: lower-case, other characters dropped, cut to fit."""
    name = _NOT_SUBDOMAIN.sub("", name.lower())[:243]
    if not name or not name[0].isalnum():
        name = "k" + name
    if not name[-1].isalnum():
        name += "k"
    return name


def auto_created_name(event_type: str, event_source: str, reference: Reference) -> str:
    digest = hashlib.md5((event_type + event_source + reference.namespace + reference.name).encode(),
                         usedforsecurity=False).hexdigest()
    return dns1123_subdomain(f"et-{reference.name}-{digest}")


def auto_created(event: Event, reference: Reference) -> dict[str, Any]:
    """The v1beta3 EventType Knative's auto-create writes for `event` seen at `reference`."""
    attrs = event.attributes
    api_version = REFERENCE_API_VERSIONS.get(reference.kind, "")
    ref = {"apiVersion": api_version, "kind": reference.kind, "name": reference.name,
           "namespace": reference.namespace}
    owner = {"apiVersion": api_version, "kind": reference.kind, "name": reference.name, "uid": reference.uid}

    def attribute(name: str, value: Any = None) -> dict[str, Any]:
        return {"name": name, "required": True, **({} if value is None else {"value": str(value)})}

    return {
        "apiVersion": API_VERSION,
        "kind": "EventType",
        "metadata": {"name": auto_created_name(event.type, event.source, reference),
                     "namespace": reference.namespace, "ownerReferences": [owner]},
        "spec": {
            "reference": ref,
            "description": DESCRIPTION,
            "attributes": [
                attribute("type", event.type),
                attribute("source", event.source),
                attribute("schemadata", attrs.get("dataschema", "")),
                attribute("specversion", attrs.get("specversion", "1.0")),
                attribute("id"),
            ],
        },
    }


class EventTypeRecorder(Protocol):
    """Where auto-created EventTypes are written: creates each one that does not exist yet, leaves the rest."""

    async def record(self, eventtypes: Sequence[dict[str, Any]]) -> None: ...


Key = tuple[str, str, str]


class AutoCreate:
    """The queue between the receive paths (`observe`, synchronous and cheap) and an EventTypeRecorder."""

    def __init__(self, *, max_pending: int = 1000, max_seen: int = 100_000, timeout_s: float = 30.0) -> None:
        self._max_seen = max_seen
        self._timeout_s = timeout_s
        self._seen: set[Key] = set()
        self._queue: asyncio.Queue[tuple[Key, dict[str, Any]]] = asyncio.Queue(max_pending)
        self._task: asyncio.Task[None] | None = None

    def observe(self, event: Event, reference: Reference) -> None:
        """An event accepted at `reference` (a Broker or channel), or a reply of a Trigger or Subscription."""
        key = (reference.uid, event.type, event.source)
        if key in self._seen:
            return
        try:
            self._queue.put_nowait((key, auto_created(event, reference)))
        except asyncio.QueueFull:
            DROPPED.inc()
            if log.isEnabledFor(logging.DEBUG):
                log.debug("EventType auto-create queue full: (%r, %r) at %s/%s not recorded", event.type,
                          event.source, reference.kind, reference.name)
            return
        if len(self._seen) >= self._max_seen:
            self._seen.clear()
        self._seen.add(key)

    def start(self, recorder: EventTypeRecorder) -> None:
        """Write what is queued through `recorder` (what the receive paths queued before is kept)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(recorder), name="eventtype-auto-create")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def idle(self) -> None:
        """Until everything queued so far is written (tests and benchmarks wait on it)."""
        await self._queue.join()

    async def _run(self, recorder: EventTypeRecorder) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 100:
                batch.append(self._queue.get_nowait())
            try:
                async with asyncio.timeout(self._timeout_s):
                    await recorder.record([manifest for _, manifest in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever the recorder raised, a later event tries again
                FAILED.inc(len(batch))
                log.warning("EventType auto-create: %d EventType(s) not written: %s", len(batch), exc)
                for key, _ in batch:
                    self._seen.discard(key)
            finally:
                for _ in batch:
                    self._queue.task_done()


@contextlib.asynccontextmanager
async def service_auto_create(settings: EventTypeSettings, control_url: str,
                              control_token: str) -> AsyncIterator[AutoCreate | None]:
    """A separate ingress's or dispatcher's auto-create, writing through the control API; None when off."""
    if not settings.eventtype_auto_create:
        yield None
        return
    auto_create = AutoCreate(max_pending=settings.max_pending, max_seen=settings.max_seen)
    recorder = HttpRecorder(control_url, control_token)
    auto_create.start(recorder)
    try:
        yield auto_create
    finally:
        await auto_create.stop()
        await recorder.close()


class HttpRecorder:
    """For the separate ingress and dispatcher: writes through the control API (`/api/v1/apply`)."""

    def __init__(self, control_url: str, token: str) -> None:
        self._url = control_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None

    async def record(self, eventtypes: Sequence[dict[str, Any]]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        missing = []
        for et in eventtypes:
            meta = et["metadata"]
            async with self._session.get(f"{self._url}/api/v1/resources/eventtypes/{meta['namespace']}/"
                                         f"{meta['name']}") as response:
                await response.read()
                if response.status == 404:
                    missing.append(et)
                elif response.status != 200:
                    raise RuntimeError(f"control API answered {response.status} to a GET of EventType "
                                       f"{meta['namespace']}/{meta['name']}")
        if not missing:
            return
        async with self._session.post(f"{self._url}/api/v1/apply", json={"items": missing}) as response:
            body = await response.text()
            if response.status != 200:
                raise RuntimeError(f"control API answered {response.status}: {body[:500]}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
