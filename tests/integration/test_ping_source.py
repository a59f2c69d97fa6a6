"""PingSource through the whole embedded Nerve: Knative's YAML applied, ticks at a real HTTP sink.

Schedules use the seconds field (`* * * * * *` = every second) so that a test sees several ticks in a
few seconds; spacing is measured on arrival, not counted within a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from core.events import Event
from tests.support.receiver import Receiver
from tests.support.stack import Stack, eventually, running_stack

NERVE = str(Path(sys.executable).with_name("nerve"))


def ping(name: str, sink: dict[str, Any], namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"sink": sink, **spec}}


def seconds(events: list[Event]) -> list[float]:
    return [datetime.fromisoformat(str(e.attributes["time"]).replace("Z", "+00:00")).timestamp() for e in events]


async def nerve(stack: Stack, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        NERVE, *args, env=stack.cli_env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin else None)
    return proc.returncode or 0, out.decode(), err.decode()


SEED = """
apiVersion: v1
kind: Service
metadata:
  name: event-display
  annotations: {{nerve.dev/url: "{url}"}}
---
apiVersion: sources.knative.dev/v1beta1
kind: PingSource
metadata:
  name: test-ping-source
spec:
  schedule: "* * * * * *"   # the seed's "*/1 * * * *" (every minute), every second here
  jsonData: '{{"message": "hello, world!"}}'
  sink:
    ref:
      apiVersion: v1
      kind: Service
      name: event-display
"""


async def test_every_second_base64_and_the_seed_s_v1beta1_json(stack: Stack) -> None:
    every, raw, seed = Receiver(), Receiver(), Receiver()
    for r in (every, raw, seed):
        await r.start()
    body = "héllo, wörld\n\x00".encode()
    try:
        await stack.apply(
            ping("every-second", {"uri": every.url}, schedule="*/1 * * * * *",
                 ceOverrides={"extensions": {"team": "payments"}}),
            ping("raw", {"uri": raw.url}, namespace="ns2", schedule="* * * * * *", contentType="text/plain",
                 dataBase64=base64.b64encode(body).decode()),
        )
        await stack.apply(SEED.format(url=seed.url))
        await eventually(lambda: len(every.received) >= 4 and raw.received and seed.received, timeout=10)

        # On time: one tick a second, arriving a second apart, each with its own scheduled second.
        arrivals = [r.at for r in every.received[:4]]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert all(0.6 < gap < 1.4 for gap in gaps), gaps
        times = seconds(every.events[:4])
        assert [b - a for a, b in itertools.pairwise(times)] == [1.0, 1.0, 1.0]
        first = every.received[0]
        assert first.event.type == "dev.knative.sources.ping"
        assert first.event.source == "/apis/v1/namespaces/default/pingsources/every-second"
        assert first.event.attributes["team"] == "payments"
        assert first.headers["Kn-Namespace"] == "default"
        assert len(set(every.ids)) == len(every.ids)

        got = raw.received[0]
        assert got.body == body
        assert got.headers["Content-Type"] == "text/plain"
        assert got.event.source == "/apis/v1/namespaces/ns2/pingsources/raw"
        assert got.headers["Kn-Namespace"] == "ns2"

        shown = seed.received[0]
        assert json.loads(shown.body) == {"message": "hello, world!"}
        assert shown.event.attributes["datacontenttype"] == "application/json"
        assert shown.headers["Kn-Namespace"] == "default"

        obj = await stack.get("pingsources", "default", "test-ping-source")
        assert obj["apiVersion"] == "sources.knative.dev/v1"
        assert obj["spec"]["data"] == '{"message": "hello, world!"}'
        status = obj["status"]
        assert status["sinkUri"] == seed.url
        assert status["ceAttributes"] == [{"type": "dev.knative.sources.ping",
                                           "source": "/apis/v1/namespaces/default/pingsources/test-ping-source"}]
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "Deployed": "True", "Ready": "True", "SinkProvided": "True"}
    finally:
        for r in (every, raw, seed):
            await r.stop()


async def test_a_broker_sink_and_deleting_stops_the_ticks(stack: Stack) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        await stack.apply(
            {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}},
            {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "pings"},
             "spec": {"broker": "default", "filter": {"attributes": {"type": "dev.knative.sources.ping"}},
                      "subscriber": {"uri": receiver.url}}},
            ping("to-broker", {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                       "name": "default"}}, schedule="* * * * * *", data="tick"),
        )
        await eventually(lambda: len(receiver.received) >= 2, timeout=10)
        assert receiver.received[0].body == b"tick"
        assert receiver.received[0].event.source == "/apis/v1/namespaces/default/pingsources/to-broker"
        status = (await stack.get("pingsources", "default", "to-broker"))["status"]
        assert status["sinkUri"] == f"{stack.ingress}/default/default"

        await stack.delete("pingsources", "default", "to-broker")
        await asyncio.sleep(0.5)  # a tick sent just before the delete may still be on its way
        count = len(receiver.received)
        await asyncio.sleep(2.5)
        assert len(receiver.received) == count
    finally:
        await receiver.stop()


async def test_a_new_schedule_and_data_take_effect_without_a_restart(stack: Stack) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        await stack.apply(ping("changing", {"uri": receiver.url}, schedule="0 0 1 1 *", data="old"))
        await asyncio.sleep(1.5)
        assert receiver.received == []  # once a year
        await stack.apply(ping("changing", {"uri": receiver.url}, schedule="* * * * * *", data="new"))
        await eventually(lambda: len(receiver.received) >= 2, timeout=5)
        assert {r.body for r in receiver.received} == {b"new"}
        await stack.apply(ping("changing", {"uri": receiver.url}, schedule="*/2 * * * * *", data="new"))
        await asyncio.sleep(1.2)
        mark = len(receiver.received)
        await eventually(lambda: len(receiver.received) >= mark + 2, timeout=6)
        times = seconds(receiver.events[mark:mark + 2])
        assert times[1] - times[0] == 2.0 and times[0] % 2 == 0
    finally:
        await receiver.stop()


async def test_a_restart_neither_doubles_nor_skips_a_tick(tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply(ping("steady", {"uri": receiver.url}, schedule="* * * * * *"))
            await eventually(lambda: len(receiver.received) >= 2, timeout=10)
        before = len(receiver.received)
        await asyncio.sleep(2.5)  # two or three ticks fall due while nothing runs
        assert len(receiver.received) == before
        async with running_stack(tmp_path):
            await eventually(lambda: len(receiver.received) >= before + 4, timeout=10)
        times = seconds(receiver.events)
        # Every second from the first tick to the last exactly once: the ones missed while stopped were
        # fired late after the start, none was sent twice.
        # Ticks fired late together are sent at once and may arrive in any order: compared sorted.
        assert sorted(times) == [min(times) + i for i in range(len(times))], times
        wall = time.time() - asyncio.get_running_loop().time()
        lateness = [r.at + wall - t for r, t in zip(receiver.received, times, strict=True)]
        assert max(lateness[:before]) < 1.0
        # The first tick missed while stopped (2.5 s) fell due 1.5 s or more before the start: fired late.
        assert max(lateness[before:]) > 1.4
    finally:
        await receiver.stop()


async def test_invalid_specs_are_refused_with_the_field_by_the_cli(stack: Stack) -> None:
    cases = [
        ("schedule: '61 * * * *'", "spec.schedule", "the minute field '61' is out of range"),
        ("schedule: '@every 1m'", "spec.schedule", "@every is not supported"),
        ("timezone: Mars/Olympus", "spec.timezone", "'Mars/Olympus' is not an IANA time zone name"),
        ("{data: x, dataBase64: eA==}", "spec.dataBase64", "mutually exclusive"),
        ("{contentType: application/json, data: 'not json'}", "spec.data", "is not valid JSON"),
        ("dataBase64: '***'", "spec.dataBase64", "is not valid base64"),
    ]
    for field, path, reason in cases:
        spec = field if field.startswith("{") else "{" + field + "}"
        manifest = (f"apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata: {{name: bad}}\n"
                    f"spec: {{sink: {{uri: 'http://127.0.0.1:1/'}}, {spec[1:-1]}}}\n")
        code, out, err = await nerve(stack, "apply", "-f", "-", stdin=manifest)
        assert code == 2, (field, out, err)
        assert path in err and reason in err, (field, err)


async def test_get_pingsources_and_get_sources(stack: Stack) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        await stack.apply(ping("p1", {"uri": receiver.url}, schedule="0 0 1 1 *"),
                          {"apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource", "metadata": {"name": "k1"},
                           "spec": {"bootstrapServers": ["127.0.0.1:1"], "topics": ["t"],
                                    "sink": {"uri": receiver.url}}})
        code, out, err = await nerve(stack, "get", "pingsources")
        assert code == 0, err
        header, row = out.strip().splitlines()
        assert header.split() == ["NAME", "SCHEDULE", "SINK", "AGE", "READY", "REASON"]
        assert row.split()[:7] == ["p1", "0", "0", "1", "1", "*", receiver.url] and row.split()[-1] == "True"

        code, out, err = await nerve(stack, "get", "sources")
        assert code == 0, err
        tables = out.strip().split("\n\n")
        kafka, pings = (t.splitlines() for t in tables)
        assert kafka[0].split() == ["NAME", "TOPICS", "BOOTSTRAPSERVERS", "READY", "REASON", "AGE"]
        assert kafka[1].split()[0] == "kafkasource.sources.knative.dev/k1"
        assert pings[0].split() == ["NAME", "SCHEDULE", "SINK", "AGE", "READY", "REASON"]
        assert pings[1].split()[0] == "pingsource.sources.knative.dev/p1"

        code, out, err = await nerve(stack, "get", "sources", "-o", "json")
        assert code == 0, err
        assert sorted(item["kind"] for item in json.loads(out)["items"]) == ["KafkaSource", "PingSource"]
        code, out, err = await nerve(stack, "get", "sources", "p1")
        assert code == 2 and "'sources' is a category of kinds" in err

        code, out, err = await nerve(stack, "get", "sources", "-n", "elsewhere")
        assert (code, out) == (0, "") and "No resources found in elsewhere namespace." in err
    finally:
        await receiver.stop()
