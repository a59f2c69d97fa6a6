"""Channel benchmark: load generator -> channel address -> backend -> N Subscriptions -> local subscribers.

One channel (a KafkaChannel, a NatsJetStreamChannel or an InMemoryChannel; or, with `--generic`, a
`messaging.knative.dev/v1` Channel whose channelTemplate names that kind) with N Subscriptions, each to
its own HTTP subscriber, all applied as Knative YAML through the control API. Events are POSTed to the
channel's `status.address.url`. Nerve runs as its own process(es) (bench_e2e.py's `NerveProcess` /
`SeparateServices`: CPU and RSS measured with psutil); the load generator and the subscribers share
this process. Each run prints, per Subscription count:

- into: accepted events/s at the channel (202s / time to send them all), N requests in flight;
- out: deliveries/s over all subscribers (receptions / time from the first send to the last reception);
- end-to-end latency p50/p99 over every delivery (send -> subscriber);
- delivered/expected: distinct (subscription, event) pairs received of accepted x N, and how many
  subscriptions got every event; dup: receptions beyond the first (at least once allows them);
- the CPU (percent of one core) and peak RSS of each Nerve process, the CPU of this process (load
  generator and subscribers: at high fan-out it can be the bottleneck), and the machine's load average.

Then the same at a fixed rate (`--rate` events/s) for latency without a backlog.

    .venv/bin/python bench/bench_channel.py --backend kafka --kafka-bootstrap 127.0.0.1:9092 --subscriptions 1
    .venv/bin/python bench/bench_channel.py --backend nats --nats-url nats://127.0.0.1:4222 --subscriptions 1,10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

# bench/ is not a package: the Nerve processes, sinks and load generator of bench_e2e.py are imported by path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import (
    NerveProcess,
    SeparateServices,
    Sinks,
    _sample_rss,
    _stop_sampler,
    api_token,
    apply,
    free_port,
    percentile,
    send_all,
)

NAMESPACE = "bench"
MESSAGING = "messaging.knative.dev"
KIND = {
    "memory": (f"{MESSAGING}/v1", "InMemoryChannel"),
    "kafka": (f"{MESSAGING}/v1beta1", "KafkaChannel"),
    "nats": (f"{MESSAGING}/v1alpha1", "NatsJetStreamChannel"),
}


@dataclass
class Subscribers(Sinks):
    """Every Subscription's subscriber (`/<subscription>`): counts each (subscription, event id) pair.

    Only this run's events count (ids with the run's prefix), so a late warm-up delivery or a backlog an
    earlier run left on a reused Kafka or NATS is never taken for this run's.
    """

    prefix: str = "-"
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        event_id = request.headers.get("ce-id", "")
        if not event_id.startswith(self.prefix):
            await request.read()
            return web.Response(status=202)
        key = (request.match_info["subscription"], event_id)
        self.pairs[key] = self.pairs.get(key, 0) + 1
        return await super().handle(request)

    def start_run(self, prefix: str, target: int) -> None:
        self.reset(target)
        self.pairs.clear()
        self.prefix = prefix


def manifests(backend: str, channel: str, subscriptions: int, sink_url: str, generic: bool,
              partitions: int) -> tuple[list[dict[str, Any]], tuple[str, str]]:
    """The channel and its Subscriptions, as Knative's docs write them; and the (apiVersion, kind) to read
    the channel's address from."""
    api_version, kind = KIND[backend]
    spec: dict[str, Any] = {"numPartitions": partitions, "replicationFactor": 1} if backend == "kafka" else {}
    meta = {"name": channel, "namespace": NAMESPACE}
    if generic:
        template: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
        if spec:
            template["spec"] = spec
        obj = {"apiVersion": f"{MESSAGING}/v1", "kind": "Channel", "metadata": meta,
               "spec": {"channelTemplate": template}}
        api_version, kind = f"{MESSAGING}/v1", "Channel"
    else:
        obj = {"apiVersion": api_version, "kind": kind, "metadata": meta, **({"spec": spec} if spec else {})}
    items: list[dict[str, Any]] = [obj]
    for i in range(subscriptions):
        items.append({
            "apiVersion": f"{MESSAGING}/v1",
            "kind": "Subscription",
            "metadata": {"name": f"s{i}", "namespace": NAMESPACE},
            "spec": {
                "channel": {"apiVersion": api_version, "kind": kind, "name": channel},
                "subscriber": {"uri": f"{sink_url}s{i}"},
            },
        })
    return items, (api_version, kind)


async def get(session: aiohttp.ClientSession, api: int, token: str, kind: str, name: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{api}/api/v1/resources/{kind.lower()}/{NAMESPACE}/{name}"
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
        body: dict[str, Any] = await r.json(content_type=None)
        return body


def _ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


async def wait_ready(session: aiohttp.ClientSession, api: int, token: str, kind: str, channel: str,
                     subscriptions: int, timeout: float = 60.0) -> str:
    """The channel's status.address.url once it and every Subscription are Ready."""
    deadline = time.monotonic() + timeout
    pending: dict[str, str] = {}
    while time.monotonic() < deadline:
        pending.clear()
        obj = await get(session, api, token, kind, channel)
        url = ((obj.get("status") or {}).get("address") or {}).get("url", "")
        if not (_ready(obj) and url):
            pending[f"{kind}/{channel}"] = str((obj.get("status") or {}).get("conditions"))
        for i in range(subscriptions):
            sub = await get(session, api, token, "Subscription", f"s{i}")
            if not _ready(sub):
                pending[f"Subscription/s{i}"] = str((sub.get("status") or {}).get("conditions"))
        if not pending:
            return str(url)
        await asyncio.sleep(0.25)
    raise RuntimeError(f"not Ready within {timeout:.0f}s: {pending}")


async def warm_up(session: aiohttp.ClientSession, url: str, sinks: Subscribers, subscriptions: int) -> None:
    """Until every subscriber has had an event: a new Subscription may start at the end of the topic
    a moment after it is Ready (its consumer joining), and the run must not count that moment."""
    sinks.start_run("warm", 1 << 60)
    deadline = time.monotonic() + 60
    n = 0
    while len({sub for sub, _ in sinks.pairs}) < subscriptions:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len({s for s, _ in sinks.pairs})}/{subscriptions} subscribers got events")
        await send_all(session, [url], sinks, 1, 1, None, f"warm-probe{n}")
        n += 1
        await asyncio.sleep(0.2)
    await send_all(session, [url], sinks, 200, 32, None, "warm")
    await asyncio.sleep(1.0)


def _usage(cpu0: dict[str, Any], cpu1: dict[str, Any], peaks: dict[str, int], span: float) -> str:
    return "  ".join(
        f"{name} cpu={(cpu1[name].user + cpu1[name].system - c.user - c.system) / span * 100:3.0f}%"
        + (f" rss={peaks[name] / 2**20:5.1f}MiB" if name in peaks else "")
        for name, c in cpu0.items()
    )


async def run_case(args: argparse.Namespace, subscriptions: int) -> None:
    sinks = Subscribers(expected_per_id=subscriptions)
    app = web.Application()
    app.router.add_post("/{subscription}", sinks.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sink_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", sink_port).start()
    channel = f"bench-{uuid.uuid4().hex[:6]}"  # a topic/stream and groups of this run only
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        nerve: NerveProcess | SeparateServices = (
            SeparateServices(args, state) if args.topology == "separate" else NerveProcess(args, state)
        )
        try:
            await nerve.wait_ready()
            connector = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:
                items, (_, kind) = manifests(args.backend, channel, subscriptions,
                                             f"http://127.0.0.1:{sink_port}/", args.generic, args.partitions)
                token = api_token(state, nerve.token)
                await apply(session, nerve.api, items, token)
                await nerve.wait_applied()
                url = await wait_ready(session, nerve.api, token, kind, channel, subscriptions)
                await warm_up(session, url, sinks, subscriptions)
                shape = f"{kind}" + (f"({KIND[args.backend][1]})" if args.generic else "")
                print(f"# {args.backend} {args.topology} {shape} {NAMESPACE}/{channel} at {url}, "
                      f"subscriptions={subscriptions}" + (f", numPartitions={args.partitions}"
                                                          if args.backend == "kafka" else ""), flush=True)

                for label, prefix, count, rate in (
                    ("throughput", "tp", args.events, None),
                    (f"at {args.rate:.0f}/s", "rate", args.rate_events, args.rate),
                ):
                    run_prefix = f"{prefix}{uuid.uuid4().hex[:6]}"
                    sinks.start_run(run_prefix, count * subscriptions)
                    load0 = os.getloadavg()[0]
                    # This process too: the load generator and N subscribers share its one core.
                    watched = {**nerve.ps, "bench(load+subscribers)": psutil.Process()}
                    cpu0 = {name: ps.cpu_times() for name, ps in watched.items()}
                    sample = asyncio.create_task(_sample_rss(nerve.ps))
                    result = await send_all(session, [url], sinks, count, args.concurrency, rate, run_prefix)
                    expected = result.accepted * subscriptions
                    sinks.target = expected
                    try:
                        await asyncio.wait_for(sinks.done.wait(), max(args.drain_timeout, expected / 500))
                    except TimeoutError:
                        pass
                    peaks = await _stop_sampler(sample)
                    cpu1 = {name: ps.cpu_times() for name, ps in watched.items()}
                    span = max(sinks.last_at - result.started, 1e-9)
                    got = {key for key, n in sinks.pairs.items() if n and key[1] in sinks.sent_at}
                    per_sub = {f"s{i}": 0 for i in range(subscriptions)}
                    for sub, _ in got:
                        per_sub[sub] = per_sub.get(sub, 0) + 1
                    complete = sum(1 for n in per_sub.values() if n == result.accepted)
                    dups = sum(n - 1 for n in sinks.pairs.values() if n > 1)
                    print(
                        f"{args.backend:6} subs={subscriptions:<3} {label:11} "
                        f"into={result.accepted / result.seconds:7.0f} ev/s  "
                        f"out={sinks.delivered / span:7.0f} deliveries/s  "
                        f"p50={percentile(sinks.latencies, 0.50) * 1000:7.1f} ms  "
                        f"p99={percentile(sinks.latencies, 0.99) * 1000:7.1f} ms  "
                        f"delivered={len(got)}/{expected} (subs complete {complete}/{subscriptions}) "
                        f"dup={dups} refused={result.refused}  {_usage(cpu0, cpu1, peaks, span)}  "
                        f"load1={load0:.2f}->{os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
        finally:
            nerve.stop()
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="memory", choices=["memory", "kafka", "nats"])
    parser.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", ""))
    parser.add_argument("--subscriptions", default="1,10", help="comma-separated Subscription counts")
    parser.add_argument("--generic", action="store_true",
                        help="a messaging.knative.dev/v1 Channel with a channelTemplate instead of the concrete kind")
    parser.add_argument("--partitions", type=int, default=1, help="a KafkaChannel's numPartitions")
    parser.add_argument("--events", type=int, default=5000, help="events in the throughput run")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s in the latency run")
    parser.add_argument("--rate-events", type=int, default=2000, help="events in the latency run")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--topology", default="embedded", choices=["embedded", "separate"],
                        help="one `nerve up` process, or control/ingress/dispatcher as separate processes")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    for count in (int(n) for n in args.subscriptions.split(",")):
        run(run_case(args, count))


if __name__ == "__main__":
    main()
