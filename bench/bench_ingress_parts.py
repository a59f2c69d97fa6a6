"""The ingress's CPU per event, piece by piece, without HTTP or a dispatcher (docs/performance.md, "The ingress's
own CPU on Kafka").

    .venv/bin/python bench/bench_ingress_parts.py handler                 # Ingress.handle, a backend that only encodes
    .venv/bin/python bench/bench_ingress_parts.py publish --bootstrap 127.0.0.1:9092 --callers 64
    .venv/bin/python bench/bench_ingress_parts.py publish --bootstrap 127.0.0.1:9092 --callers 1 --events 3000

`handler` runs `Ingress.handle` on the bench_e2e request (binary mode, 10 headers) against a contract with one
Broker and a backend whose `publish` only runs `channels.kafka.encode`: CPU per request (process_time) over
`--rounds` rounds, min and median. The machine's load moves that figure by tens of percent; for a figure it does
not move, count instructions under valgrind, the difference of 3 rounds and 1 (the set-up cancels out):

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        .venv/bin/python bench/bench_ingress_parts.py handler --requests 1000 --rounds 1   # then --rounds 3

`publish` calls `KafkaBackend.publish` from `--callers` coroutines on a new 10-partition topic: events/s and CPU
per event (user and system), and each publish's latency. Run either from the tree to measure
(`cd <tree> && PYTHONPATH=<tree> ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Mapping

import uvloop
from multidict import CIMultiDict, CIMultiDictProxy

from channels.base import Backend, TopicSpec
from channels.kafka import KafkaBackend, KafkaSettings, encode
from core.cli_settings import parse_service
from core.contract import Contract, Reference, Resource
from core.events import Event
from core.hops import enter_broker
from core.settings import build
from ingress.__main__ import command_line
from ingress.app import Ingress
from ingress.settings import IngressSettings

HEADERS = [("Host", "127.0.0.1:8080"), ("User-Agent", "Python/3.11 aiohttp/3.14.5"), ("Accept", "*/*"),
           ("Accept-Encoding", "gzip, deflate"), ("ce-specversion", "1.0"), ("ce-id", "tp1a2b3c-12345"),
           ("ce-source", "/bench"), ("ce-type", "bench.event"), ("Content-Type", "application/json"),
           ("Content-Length", "31")]
BODY = b'{"hello": "nerve", "n": 12345}'


class _EncodeOnly:
    """A backend that takes every event at once, after encoding it as the Kafka backend does."""

    name = "kafka"

    async def publish(self, topic: str, event: Event) -> None:
        encode(event)


class _Pool:
    async def get(self, backend: str, connection: str = "", security: object = None) -> Backend:
        return _EncodeOnly()  # type: ignore[return-value]


class _Request:
    __slots__ = ("_body", "content_length", "headers", "method", "path", "secure")

    def __init__(self, headers: Mapping[str, str], body: bytes) -> None:
        self.method, self.path, self.secure = "POST", "/bench/bench", False
        self.headers, self.content_length, self._body = headers, len(body), body

    async def read(self) -> bytes:
        return self._body


async def handler(requests: int, rounds: int) -> None:
    settings = build(IngressSettings, parse_service("bench", "", command_line(), []))
    ingress = Ingress(_Pool(), settings)  # type: ignore[arg-type]
    broker = Resource(uid="u", reference=Reference("u", "bench", "bench", "Broker"), backend="kafka", topic="t",
                      ingress_path="/bench/bench")
    await ingress.apply(Contract(generation=1, resources=(broker,)))
    batch = [_Request(CIMultiDictProxy(CIMultiDict(HEADERS)), BODY) for _ in range(requests)]
    answer = await ingress.handle(batch[0])
    assert answer.status == 202, (answer.status, answer.body)
    figures = []
    for _ in range(rounds):
        started = time.process_time()
        for request in batch:
            await ingress.handle(request)
        figures.append((time.process_time() - started) / requests * 1e6)
    print(f"Ingress.handle (encode-only backend): min {min(figures):.2f} median {statistics.median(figures):.2f} "
          f"us/request over {rounds} rounds of {requests}  load={os.getloadavg()[0]:.1f}", flush=True)


async def publish(bootstrap: str, callers: int, events: int, rounds: int) -> None:
    backend = KafkaBackend(KafkaSettings(bootstrap))
    await backend.start()
    topic = f"bench-parts-{uuid.uuid4().hex[:6]}"
    await backend.ensure_topic(TopicSpec(topic, 10, 1))

    def event(i: int) -> Event:
        made = Event({"specversion": "1.0", "id": f"tp{i}-abcdef", "source": "/bench", "type": "bench.event",
                      "datacontenttype": "application/json"}, BODY)
        enter_broker(made)
        return made

    try:
        for _ in range(30):  # the new topic's leaders
            try:
                await backend.publish(topic, event(0))
                break
            except Exception:  # noqa: BLE001 (any failure here means: not ready yet)
                await asyncio.sleep(1)
        for r in range(rounds):
            pending = iter([event(i) for i in range(events)])
            latencies: list[float] = []

            async def caller(pending: Iterator[Event], latencies: list[float]) -> None:
                for one in pending:
                    sent = time.perf_counter()
                    await backend.publish(topic, one)
                    latencies.append(time.perf_counter() - sent)

            times0, wall0 = os.times(), time.perf_counter()
            await asyncio.gather(*(caller(pending, latencies) for _ in range(callers)))
            times1, wall = os.times(), time.perf_counter() - wall0
            user, system = times1.user - times0.user, times1.system - times0.system
            latencies.sort()
            print(f"publish callers={callers} r{r} {events / wall:8.0f} ev/s  cpu/event="
                  f"{(user + system) / events * 1e6:6.1f} us (user {user / events * 1e6:.1f}, system "
                  f"{system / events * 1e6:.1f})  p50={latencies[len(latencies) // 2] * 1e3:.2f} ms "
                  f"p99={latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms  load={os.getloadavg()[0]:.1f}",
                  flush=True)
    finally:
        await backend.delete_topic(topic)
        await backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["handler", "publish"])
    parser.add_argument("--requests", type=int, default=10000, help="handler: requests a round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""))
    parser.add_argument("--callers", type=int, default=64, help="publish: coroutines publishing at once")
    parser.add_argument("--events", type=int, default=30000, help="publish: events a round")
    args = parser.parse_args()
    if args.part == "handler":
        uvloop.run(handler(args.requests, args.rounds))
    elif not args.bootstrap:
        sys.exit("publish needs --bootstrap (or KAFKA_BOOTSTRAP_SERVERS)")
    else:
        uvloop.run(publish(args.bootstrap, args.callers, args.events, min(args.rounds, 3)))


if __name__ == "__main__":
    main()
