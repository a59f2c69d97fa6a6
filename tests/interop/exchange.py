"""One run of a whole embedded Nerve with every SDK subscriber behind it and a plan of SDK producers.

Process start-up is the slow part (Node.js most of all), so one run serves a whole test module: each
subscriber starts once and gets two Triggers (binary and structured delivery, Knative's `delivery.format`),
each producer program starts once per (mode, specversion) and sends all of its cases, and the tests then
check what arrived, one test per event and subscriber.

`via="channel"` sends through a Channel instead, with two Subscriptions per subscriber (the same two
delivery formats): a channel hands every attribute on as it came, so nothing at all is added.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.interop.cases import BY_NAME, Case, WireEvent
from tests.interop.sdk import SDKS, Delivery, Sent, Subscriber, Tools, produce
from tests.support.manifests import broker, trigger
from tests.support.stack import Stack, event, running_stack

Via = Literal["broker", "channel"]
MESSAGING = "messaging.knative.dev/v1"
FORMATS = ("binary", "json")  # Knative's delivery.format: binary content mode, or structured (JSON)
NAMESPACE, BROKER, CHANNEL = "interop", "default", "sdk-events"
SETTLE_S = 0.5
DELIVERY_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Group:
    """One producer program run: one SDK, content mode and specversion, sending these cases."""

    producer: str
    mode: str
    specversion: str
    cases: tuple[str, ...]

    def event_id(self, case: str) -> str:
        return f"{self.producer}-{self.mode}-{self.specversion}-{case}"


@dataclass
class Exchange:
    sent: dict[str, tuple[Sent, WireEvent | None]] = field(default_factory=dict)  # event id -> request, event
    failed: dict[str, str] = field(default_factory=dict)  # event id -> why its producer run failed
    deliveries: dict[tuple[str, str], dict[str, list[Delivery]]] = field(default_factory=dict)


def case_of(event_id: str) -> Case:
    return BY_NAME[event_id.rsplit("-", 1)[1]]


def _channel_manifests(subscribers: list[Subscriber]) -> list[dict[str, Any]]:
    """A Channel (the stack's default template puts it on the backend under test) and its Subscriptions."""
    meta = {"namespace": NAMESPACE}
    channel = {"apiVersion": MESSAGING, "kind": "Channel", "metadata": {**meta, "name": CHANNEL}}
    return [channel, *({
        "apiVersion": MESSAGING, "kind": "Subscription", "metadata": {**meta, "name": f"{s.sdk}-{fmt}"},
        "spec": {"channel": {"apiVersion": MESSAGING, "kind": "Channel", "name": CHANNEL},
                 "subscriber": {"uri": f"{s.url}/{fmt}"}, "delivery": {"format": fmt}},
    } for s in subscribers for fmt in FORMATS)]


async def run_exchange(tools: Tools, plan: list[Group], state_dir: Path, *, backend: str = "memory",
                       connection: str = "", via: Via = "broker") -> Exchange:
    unique = uuid.uuid4().hex[:8]
    async with running_stack(
        state_dir, backend=backend, kafka_bootstrap=connection if backend == "kafka" else "",
        nats_url=connection if backend == "nats" else "",
        topic_template=f"t{unique}-{{namespace}}-{{name}}", consumer_group_template=f"g{unique}-{{namespace}}-{{name}}",
        channel_topic_template=f"c{unique}-{{namespace}}-{{name}}",
        subscription_consumer_group_template=f"s{unique}-{{namespace}}-{{channel}}-{{uid}}",
    ) as stack:
        subscribers = [Subscriber(sdk) for sdk in SDKS]
        try:
            await asyncio.gather(*(s.start(tools) for s in subscribers))
            if via == "channel":
                await stack.apply(*_channel_manifests(subscribers))
                path = f"/channels/{NAMESPACE}/{CHANNEL}"
            else:
                await stack.apply(broker(BROKER, NAMESPACE), *(
                    trigger(f"{s.sdk}-{fmt}", f"{s.url}/{fmt}", namespace=NAMESPACE, broker=BROKER,
                            delivery={"format": fmt})
                    for s in subscribers for fmt in FORMATS))
                path = f"/{NAMESPACE}/{BROKER}"
            await _warm_up(stack, subscribers, path)
            return await _exchange(stack, tools, plan, subscribers, path)
        finally:
            for s in subscribers:
                with contextlib.suppress(Exception):
                    await s.stop()


def _routes(subscribers: list[Subscriber]) -> dict[tuple[str, str], list[Delivery]]:
    out: dict[tuple[str, str], list[Delivery]] = {}
    for s in subscribers:
        for fmt in FORMATS:
            out[(s.sdk, fmt)] = [d for d in s.deliveries if d.path == f"/{fmt}"]
    return out


def _ids(deliveries: list[Delivery]) -> set[str]:
    ids = set()
    for d in deliveries:
        with contextlib.suppress(Exception):
            ids.add(d.id)
    return ids


async def _warm_up(stack: Stack, subscribers: list[Subscriber], path: str) -> None:
    """Send probes until every Trigger delivers: a new Trigger reads from the end of its topic once Ready."""
    deadline = time.monotonic() + 60
    for n in range(10_000):
        probe = f"probe{n}"
        status = await stack.send(path, event(probe))
        if status != 202:
            raise AssertionError(f"warm-up probe answered {status}")
        for _ in range(20):
            if all(any(i.startswith("probe") for i in _ids(d)) for d in _routes(subscribers).values()):
                return
            await asyncio.sleep(0.05)
        if time.monotonic() > deadline:
            raise AssertionError(f"the Triggers did not deliver a probe within 60s: {_routes(subscribers)}")


async def _exchange(stack: Stack, tools: Tools, plan: list[Group], subscribers: list[Subscriber],
                    path: str) -> Exchange:
    result = Exchange()
    url = f"{stack.ingress}{path}"
    # Two producer programs at a time: the machine's two cores also run Nerve and three subscribers.
    gate = asyncio.Semaphore(2)

    async def run(group: Group) -> None:
        specs = [BY_NAME[c].spec(group.event_id(c), group.specversion) for c in group.cases]
        async with gate:
            try:
                requests = await produce(group.producer, tools, stack.session, url, group.mode, group.specversion,
                                         specs)
            except AssertionError as exc:
                for c in group.cases:
                    result.failed[group.event_id(c)] = str(exc)
                return
        for sent in requests:
            try:
                events: list[WireEvent | None] = list(sent.events)
            except Exception as exc:  # noqa: BLE001 - an unreadable request is reported per event
                result.failed.update({i: f"cannot read what the producer sent: {exc!r}" for i in sent.ids})
                continue
            if len(events) != len(sent.ids):
                events = [None] * len(sent.ids)
            for event_id, wire in zip(sent.ids, events, strict=True):
                result.sent[event_id] = (sent, wire)
        for c in group.cases:
            if group.event_id(c) not in result.sent and group.event_id(c) not in result.failed:
                result.failed[group.event_id(c)] = f"the {group.producer} producer reported nothing for it"

    await asyncio.gather(*(run(g) for g in plan))
    accepted = {i for i, (sent, _) in result.sent.items() if sent.status == 202}
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        if all(accepted <= _ids(d) for d in _routes(subscribers).values()):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(SETTLE_S)  # duplicates and events that should not arrive, but do
    for route, deliveries in _routes(subscribers).items():
        by_id: dict[str, list[Delivery]] = {}
        for d in deliveries:
            try:
                by_id.setdefault(d.id, []).append(d)
            except Exception:  # noqa: BLE001 - a body no reader understands is kept under a marker id
                by_id.setdefault("<unreadable>", []).append(d)
        result.deliveries[route] = by_id
    return result
