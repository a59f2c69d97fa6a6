"""The Kafka client alone: aiokafka (what Nerve uses) against confluent-kafka (librdkafka), CPU per record.

Two steps per client, each client in turn within one invocation, `--rounds` times:

- `produce`: N CloudEvents published as the ingress publishes them: Kafka binary mode built by Nerve's own
  `channels.kafka.encode` (value = data, `ce_*` headers), so both clients send identical bytes; C asyncio
  callers (64) each awaiting its own record's acknowledgement, acks=all. aiokafka is Nerve's own
  `KafkaBackend.publish` (linger 0, one request in flight per broker). confluent-kafka is a plain
  `Producer` (confluent_kafka.aio.AIOProducer refuses headers: "Headers are not supported in AIOProducer
  batch mode", and binary mode needs them) with `on_delivery` callbacks served by one poll thread that
  hands each poll's acknowledgements to the event loop in one `call_soon_threadsafe`; run with
  linger.ms 0 and 1 (librdkafka's default is 5).
- `consume`: those records read back from the 10-partition topic as the dispatcher's shared reader reads
  (aiokafka `getmany(max_records=500)`; confluent `Consumer.consume(num_messages=500)` run off the loop in
  one executor thread), each decoded to a Nerve Event by `channels.kafka.decode` (identical work for
  both). Partitions are assigned, not subscribed, so no group join is timed; the clock starts at the
  first batch, whose records are not counted.

The figure to compare is CPU µs per record: this process's user + system time (getrusage RUSAGE_SELF,
every thread, so librdkafka's own threads count) over the records; rates move with the neighbours' load,
printed on each line (1-minute load average). Topics are made with aiokafka's admin (unique names, 10
partitions) and deleted after. Starts nothing: it needs a Kafka.

    .venv/bin/pip install confluent-kafka==2.16.1    # not a dependency of Nerve
    .venv/bin/python bench/bench_kafka_client.py --bootstrap 127.0.0.1:55101
    .venv/bin/python bench/bench_kafka_client.py --bootstrap 127.0.0.1:55101 --events 20000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import importlib.util
import os
import resource
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from channels.base import TopicSpec
from channels.kafka import KafkaBackend, KafkaSettings, consumer_options, decode, encode
from core.events import Event

PARTITIONS = 10
WARM = 500
BATCH = 500


def event(i: int) -> Event:
    return Event({"specversion": "1.0", "id": f"e-{i}", "source": "/bench", "type": "bench.event",
                  "datacontenttype": "application/json"}, b'{"hello": "nerve", "n": 12345}')


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


Publish = Callable[[str, Event], Awaitable[None]]


# ---- producers: (publish, close)

async def aiokafka_producer(settings: KafkaSettings) -> tuple[Publish, Callable[[], Awaitable[None]]]:
    backend = KafkaBackend(settings)
    await backend.start()
    return backend.publish, backend.stop


async def confluent_producer(settings: KafkaSettings, linger_ms: int, on_loop: bool
                             ) -> tuple[Publish, Callable[[], Awaitable[None]]]:
    from confluent_kafka import KafkaException, Producer

    loop = asyncio.get_running_loop()
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all",
                         "linger.ms": linger_ms, "enable.idempotence": False, "socket.nagle.disable": True,
                         "message.max.bytes": settings.max_request_size,
                         "delivery.timeout.ms": settings.request_timeout_ms})
    acked: list[tuple[asyncio.Future[None], Any]] = []
    stop = threading.Event()

    def delivered(future: asyncio.Future[None], err: Any, _msg: Any) -> None:
        if on_loop:  # inside poll() on the loop's own thread
            settle([(future, err)])
        else:  # on the poll thread, inside poll(): the loop settles them all at once
            acked.append((future, err))

    def settle(batch: list[tuple[asyncio.Future[None], Any]]) -> None:
        for future, err in batch:
            if future.done():
                continue
            if err is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaException(err))

    def poll() -> None:
        nonlocal acked
        while not stop.is_set():
            producer.poll(0.05)
            if acked:
                batch, acked = acked, []
                loop.call_soon_threadsafe(settle, batch)

    async def poll_on_loop() -> None:
        # No thread: poll(0) on the loop every millisecond (uvloop's timer resolution), so callbacks never
        # wait for the GIL behind the loop (a thread that wants it waits up to sys.getswitchinterval()).
        while not stop.is_set():
            producer.poll(0)
            await asyncio.sleep(0.001)

    if on_loop:
        poller_task = asyncio.create_task(poll_on_loop())
    else:
        poller = threading.Thread(target=poll, name="confluent-poll", daemon=True)
        poller.start()

    async def publish(topic: str, ev: Event) -> None:
        value, key, headers = encode(ev)
        future: asyncio.Future[None] = loop.create_future()
        producer.produce(topic, value=value, key=key, headers=cast(Any, headers),
                         on_delivery=functools.partial(delivered, future))
        await future

    async def close() -> None:
        stop.set()
        if on_loop:
            await poller_task
        else:
            await asyncio.to_thread(poller.join)
        producer.flush(10)

    return publish, close


# ---- consumers: read and decode `count` records; (records timed, CPU s, wall s) from the first batch on

Consume = Callable[[KafkaSettings, str, int], Awaitable[tuple[int, float, float]]]


async def aiokafka_consume(settings: KafkaSettings, topic: str, count: int) -> tuple[int, float, float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                auto_offset_reset="earliest", **consumer_options(settings))
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        seen = timed = 0
        cpu0 = wall0 = 0.0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            for records in batches.values():
                for record in records:
                    decode(record.value, record.key, record.headers)
                    seen += 1
                    timed += 1
            if batches and not wall0:
                cpu0, wall0, timed = cpu_s(), time.perf_counter(), 0
        return timed, cpu_s() - cpu0, time.perf_counter() - wall0
    finally:
        await consumer.stop()


async def confluent_consume(settings: KafkaSettings, topic: str, count: int) -> tuple[int, float, float]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as CTopicPartition

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"bench-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": settings.fetch_max_wait_ms,
                         "max.partition.fetch.bytes": settings.max_partition_fetch_bytes,
                         "fetch.max.bytes": settings.fetch_max_bytes})
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="confluent-consume")
    loop = asyncio.get_running_loop()
    try:
        consumer.assign([CTopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        seen = timed = 0
        cpu0 = wall0 = 0.0
        while seen < count:
            # consume() waits for all num_messages or the timeout: ask for no more than is left.
            messages = await loop.run_in_executor(executor, consumer.consume, min(BATCH, count - seen), 0.5)
            for message in messages:
                if message.error() is not None:
                    raise RuntimeError(f"consume: {message.error()}")
                decode(message.value(), message.key(), cast(Sequence[tuple[str, bytes]], message.headers() or ()))
                seen += 1
                timed += 1
            if messages and not wall0:
                cpu0, wall0, timed = cpu_s(), time.perf_counter(), 0
        return timed, cpu_s() - cpu0, time.perf_counter() - wall0
    finally:
        await loop.run_in_executor(executor, consumer.close)
        executor.shutdown()


ProducerFactory = Callable[[KafkaSettings], Awaitable[tuple[Publish, Callable[[], Awaitable[None]]]]]
CLIENTS: dict[str, tuple[ProducerFactory, Consume]] = {
    "aiokafka": (aiokafka_producer, aiokafka_consume),
    "confluent-linger0": (functools.partial(confluent_producer, linger_ms=0, on_loop=False), confluent_consume),
    "confluent-linger1": (functools.partial(confluent_producer, linger_ms=1, on_loop=False), confluent_consume),
    "confluent-linger1-looppoll": (functools.partial(confluent_producer, linger_ms=1, on_loop=True),
                                   confluent_consume),
}


async def produce(publish: Publish, topic: str, first: int, count: int, concurrency: int) -> None:
    numbers = iter(range(first, first + count))

    async def caller() -> None:
        for i in numbers:
            await publish(topic, event(i))

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def run(name: str, round_: int, bootstrap: str, events: int, concurrency: int) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    make_producer, consume = CLIENTS[name]
    admin = KafkaBackend(settings)  # its aiokafka admin client makes and deletes the topic
    topic = f"bench-kafka-client-{name}-{uuid.uuid4().hex[:8]}"
    await admin.ensure_topic(TopicSpec(topic, partitions=PARTITIONS, replication_factor=1))
    await asyncio.sleep(1.0)  # leaders elected: no NotLeaderForPartition retries in the warm-up
    try:
        publish, close = await make_producer(settings)
        try:
            await produce(publish, topic, 0, WARM, concurrency)  # connections open, metadata known
            cpu0, wall0 = cpu_s(), time.perf_counter()
            await produce(publish, topic, WARM, events, concurrency)
            cpu, wall = cpu_s() - cpu0, time.perf_counter() - wall0
        finally:
            await close()
        print(f"{name:26} produce r{round_}  {events / wall:8.0f} ev/s   cpu/event={cpu / events * 1e6:6.1f} us  "
              f"events={events}  load={load()}", flush=True)
        records, cpu, wall = await consume(settings, topic, WARM + events)
        print(f"{name:26} consume r{round_}  {records / wall:8.0f} rec/s  cpu/record={cpu / records * 1e6:6.1f} us  "
              f"records={records}  load={load()}", flush=True)
    finally:
        await admin.delete_topic(topic)
        await admin.stop()


def codec_alone(count: int = 20000) -> None:
    """The codec's share of each figure: the same encode and decode, with no client around them."""
    cpu0 = cpu_s()
    records = [encode(event(i)) for i in range(count)]
    encoded = cpu_s() - cpu0
    cpu0 = cpu_s()
    for value, key, headers in records:
        decode(value, key, headers)
    decoded = cpu_s() - cpu0
    print(f"codec alone: encode {encoded / count * 1e6:.1f} us/event, decode {decoded / count * 1e6:.1f} us/record "
          f"(inside both clients' figures)  load={load()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of a running Kafka")
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=2, help="each client this many times, alternating")
    parser.add_argument("--concurrency", type=int, default=64, help="asyncio callers awaiting their ack")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    names = args.clients.split(",")
    if importlib.util.find_spec("confluent_kafka") is None:
        print("confluent-kafka is not installed (not a dependency of Nerve): "
              "`.venv/bin/pip install confluent-kafka==2.16.1` to compare it")
        names = [n for n in names if not n.startswith("confluent")]
    else:
        import confluent_kafka

        print(f"confluent-kafka {confluent_kafka.version()[0]} (librdkafka {confluent_kafka.libversion()[0]}); "
              f"{args.events} events, {args.concurrency} callers, {PARTITIONS} partitions", flush=True)
    codec_alone()
    import uvloop

    for round_ in range(args.rounds):
        for name in names:
            uvloop.run(run(name, round_, args.bootstrap, args.events, args.concurrency))


if __name__ == "__main__":
    main()
