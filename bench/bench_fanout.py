"""Many Triggers on one Broker: what reading the topic once and matching through the index costs.

For each Trigger count N the Broker gets M Triggers that match every event (`type: bench.event`) and
N - M that match none (each an exact `type: bench.other.<i>`, as Triggers on other event types are;
`--mixed` makes them bench_e2e's mix of prefix, suffix, CESQL, any/not filters instead, which the index
cannot rule out). The defaults are the issue's scenarios: 1/1, 10/10, 100/1 and 1,000/10.

Each case runs twice in one invocation, `before` (NERVE_SHARED_READER=0: every Trigger reads the whole
topic through its own consumer group, as main did) and `after` (one shared reader per topic), and prints
(with `--topology separate` counting the ingress and dispatcher processes only, not control):
accepted ev/s, deliveries/s, end-to-end p50/p99, CPU (all Nerve processes) per accepted event and per
delivered event (also net of what Nerve burns with no events: control resyncing N Triggers costs CPU
that is no delivery's), peak RSS. Then the issue's two ratios for each mode:
100 Triggers/1 match vs 1 Trigger per accepted event (goal <= 1.3), 1,000/10 vs 10/10 per delivered
event (goal <= 2).

    .venv/bin/python bench/bench_fanout.py                          # memory, embedded `nerve up`
    .venv/bin/python bench/bench_fanout.py --backend kafka --kafka-bootstrap 127.0.0.1:9092
    .venv/bin/python bench/bench_fanout.py --cases 100:1 --modes after --events 20000
    .venv/bin/python bench/bench_fanout.py --apply-cost 1000     # a generation adding 1 Trigger to 1,000

On Kafka `before` with 1,000 Triggers means 1,000 consumers in one process joining 1,000 groups;
`--before-max-triggers` (default 100) skips `before` above it and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_e2e
from bench_e2e import NON_MATCHING, NerveProcess, SeparateServices, Sinks, api_token, apply, percentile, send_all


def manifests(triggers: int, matching: int, sink_url: str, backend: str, partitions: int,
              mixed: bool) -> list[dict[str, object]]:
    items = bench_e2e.manifests(matching, sink_url, bench_e2e.BROKER_CLASS[backend], 0, partitions)
    for i in range(triggers - matching):
        exact = {"filter": {"attributes": {"type": f"bench.other.{i}"}}}
        spec = NON_MATCHING[i % len(NON_MATCHING)] if mixed else exact
        items.append({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                      "metadata": {"name": f"other{i}", "namespace": "bench"},
                      "spec": {"broker": "bench", "subscriber": {"uri": f"{sink_url}never"}, **spec}})
    return items


async def run_case(args: argparse.Namespace, triggers: int, matching: int, mode: str) -> dict[str, float]:
    sinks = Sinks(expected_per_id=matching)
    app = web.Application()
    app.router.add_post("/{trigger}", sinks.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sink_port = bench_e2e.free_port()
    await web.TCPSite(runner, "127.0.0.1", sink_port).start()
    args.env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    args.env["NERVE_SHARED_READER"] = "1" if mode == "after" else "0"
    args.eventtype_auto_create = False
    with tempfile.TemporaryDirectory() as state:
        nerve: NerveProcess | SeparateServices = (
            SeparateServices(args, Path(state)) if args.topology == "separate" else NerveProcess(args, Path(state)))
        try:
            await nerve.wait_ready()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as session:
                token = api_token(Path(state), nerve.token)
                applied = time.perf_counter()
                await apply(session, nerve.api,
                            manifests(triggers, matching, f"http://127.0.0.1:{sink_port}/", args.backend,
                                      args.partitions, args.mixed), token)
                await nerve.wait_applied()
                urls = [f"http://127.0.0.1:{port}/bench/bench" for port in nerve.ingress_ports]
                sinks.reset(100 * matching)
                await send_all(session, urls, sinks, 100, 16, None, f"warm{uuid.uuid4().hex[:6]}")
                await asyncio.wait_for(sinks.done.wait(), 300)
                ready_s = time.perf_counter() - applied

                # What Nerve burns with no event flowing (control's resync of N Triggers, timers), so the
                # per-event figures can be given net of it too.
                idle0, idle_at = _cpu(nerve), time.perf_counter()
                await asyncio.sleep(args.idle_seconds)
                idle_rate = (_cpu(nerve) - idle0) / (time.perf_counter() - idle_at)

                sinks.reset(args.events * matching)
                cpu0 = {name: ps.cpu_times() for name, ps in nerve.ps.items()}
                sampler = asyncio.create_task(bench_e2e._sample_rss(nerve.ps))
                result = await send_all(session, urls, sinks, args.events, args.concurrency, None,
                                        f"tp{uuid.uuid4().hex[:6]}")
                sinks.target = result.accepted * matching
                try:
                    await asyncio.wait_for(sinks.done.wait(), max(args.drain_timeout, sinks.target / 500))
                except TimeoutError:
                    pass
                peaks = await bench_e2e._stop_sampler(sampler)
                cpu1 = {name: ps.cpu_times() for name, ps in nerve.ps.items()}
        finally:
            nerve.stop()
            await runner.cleanup()
    span = max(sinks.last_at - result.started, 1e-9)
    # With --topology separate, the data plane alone: control's resync of N Triggers is no event's cost.
    counted = {n: c for n, c in cpu0.items() if n != "control"} if args.topology == "separate" else cpu0
    cpu_s = sum(cpu1[n].user + cpu1[n].system - c.user - c.system for n, c in counted.items())
    busy = sinks.last_at - result.started if sinks.delivered else result.seconds
    net_s = max(cpu_s - idle_rate * busy, 0.0)
    undelivered = sum(1 for i in sinks.sent_at if sinks.arrivals.get(i, 0) < matching)
    figures = {
        "accepted": result.accepted / result.seconds,
        "deliveries": sinks.delivered / span,
        "p50": percentile(sinks.latencies, 0.50) * 1000,
        "p99": percentile(sinks.latencies, 0.99) * 1000,
        "cpu_accepted": cpu_s / max(result.accepted, 1) * 1e6,
        "cpu_delivered": cpu_s / max(sinks.delivered, 1) * 1e6,
        "rss": sum(peaks.values()) / 2**20,
        "net_accepted": net_s / max(result.accepted, 1) * 1e6,
        "net_delivered": net_s / max(sinks.delivered, 1) * 1e6,
        "idle": idle_rate * 100,
    }
    print(f"{args.backend:6} {mode:6} triggers={triggers:<5} matching={matching:<3} "
          f"accepted={figures['accepted']:7.0f} ev/s  deliveries={figures['deliveries']:7.0f}/s  "
          f"p50={figures['p50']:7.1f} ms  p99={figures['p99']:7.1f} ms  "
          f"cpu/accepted={figures['cpu_accepted']:6.0f} us  cpu/delivered={figures['cpu_delivered']:6.0f} us  "
          f"net of idle ({figures['idle']:3.0f}% of a core): {figures['net_accepted']:6.0f} / "
          f"{figures['net_delivered']:6.0f} us  "
          f"rss={figures['rss']:6.1f} MiB  ready in {ready_s:5.1f} s  "
          f"undelivered={undelivered} refused={result.refused} load={os.getloadavg()[0]:.1f}", flush=True)
    return figures


async def apply_cost(triggers: int) -> None:
    """In process, on memory: how long a generation that adds one Trigger to `triggers` takes to apply, with
    the runners and compiled filters kept and the shared reader on (now), and with a reader per Trigger,
    every runner updated and every filter compiled again (main before this change, emulated)."""
    from channels.base import TopicSpec
    from channels.registry import BackendPool
    from core.contract import Contract, Egress, Reference, Resource
    from dispatcher import egress as egress_module
    from dispatcher import service as service_module
    from dispatcher.service import Dispatcher
    from dispatcher.settings import DispatcherSettings

    broker = Reference("b", "bench", "bench", "Broker")

    def trigger(n: int) -> Egress:
        return Egress(uid=f"t{n}", reference=Reference(f"t{n}", "bench", f"t{n}", "Trigger"),
                      consumer_group=f"g{n}", destination=f"http://127.0.0.1:9/t{n}",
                      filters=[{"exact": {"type": f"bench.other.{n}"}}, {"cesql": f"source LIKE '/s{n}%'"}])

    def contract(generation: int, count: int) -> Contract:
        egresses = tuple(trigger(n) for n in range(count))
        return Contract(generation, (Resource("b", broker, "memory", "topic-apply", "/bench/bench", egresses),))

    original_changed, original_config = service_module._changed, egress_module._Config
    for mode in ("before", "after"):
        if mode == "before":
            service_module._changed = lambda *_: True  # type: ignore[assignment]
            egress_module._Config = lambda egress, resource, settings, previous=None: original_config(  # type: ignore[assignment,misc]
                egress, resource, settings)
        pool = BackendPool()
        await (await pool.get("memory")).ensure_topic(TopicSpec("topic-apply"))
        service = Dispatcher(pool, DispatcherSettings(drain_timeout_s=0.5, shared_reader=mode == "after"))
        await service.start()
        try:
            await service.apply(contract(1, triggers))
            started = time.perf_counter()
            await service.apply(contract(2, triggers + 1))
            took = time.perf_counter() - started
        finally:
            await service.stop()
            await pool.stop()
            service_module._changed, egress_module._Config = original_changed, original_config
        print(f"apply  {mode:6} a generation adding 1 Trigger to {triggers}: {took * 1000:7.1f} ms  "
              f"load={os.getloadavg()[0]:.1f}", flush=True)


def _cpu(nerve: NerveProcess | SeparateServices) -> float:
    return sum(t.user + t.system for name, t in ((n, ps.cpu_times()) for n, ps in nerve.ps.items())
               if name != "control")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="memory", choices=["memory", "kafka", "nats"])
    parser.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", ""))
    parser.add_argument("--cases", default="1:1,10:10,100:1,1000:10",
                        help="comma-separated TRIGGERS:MATCHING pairs")
    parser.add_argument("--modes", default="before,after", help="before (a reader per Trigger), after (shared)")
    parser.add_argument("--events", type=int, default=3000, help="events in each throughput run")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--partitions", type=int, default=1, help="Kafka: partitions of the Broker's topic")
    parser.add_argument("--topology", default="embedded", choices=["embedded", "separate"])
    parser.add_argument("--mixed", action="store_true",
                        help="non-matching Triggers of mixed dialects (prefix, CESQL, ...) instead of exact types")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="seconds of no events before each run, to measure Nerve's idle CPU")
    parser.add_argument("--apply-cost", type=int, default=0, metavar="N",
                        help="only time applying a generation that adds one Trigger to N (in process, memory)")
    parser.add_argument("--before-max-triggers", type=int, default=100,
                        help="Kafka/NATS: skip `before` above this many Triggers (one consumer each)")
    parser.add_argument("--workers", type=int, default=0,
                        help="--workers N for nerve up (embedded) or python -m ingress (separate); 0: their default")
    args = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    if args.apply_cost:
        run(apply_cost(args.apply_cost))
        return
    cases = [tuple(int(x) for x in case.split(":")) for case in args.cases.split(",")]
    results: dict[tuple[str, int, int], dict[str, float]] = {}
    for triggers, matching in cases:
        for mode in args.modes.split(","):
            if mode == "before" and args.backend != "memory" and triggers > args.before_max_triggers:
                print(f"{args.backend:6} {mode:6} triggers={triggers:<5} skipped (--before-max-triggers)")
                continue
            results[(mode, triggers, matching)] = run(run_case(args, triggers, matching, mode))
    for mode in args.modes.split(","):
        one, hundred = results.get((mode, 1, 1)), results.get((mode, 100, 1))
        ten, thousand = results.get((mode, 10, 10)), results.get((mode, 1000, 10))
        if one and hundred:
            print(f"{mode:6} 100 Triggers/1 match vs 1 Trigger, CPU per accepted event: "
                  f"{hundred['cpu_accepted'] / one['cpu_accepted']:.2f}x, net of idle "
                  f"{hundred['net_accepted'] / one['net_accepted']:.2f}x (goal <= 1.3)")
        if ten and thousand:
            print(f"{mode:6} 1,000 Triggers/10 match vs 10 Triggers, CPU per delivered event: "
                  f"{thousand['cpu_delivered'] / ten['cpu_delivered']:.2f}x, net of idle "
                  f"{thousand['net_delivered'] / ten['net_delivered']:.2f}x (goal <= 2)")


if __name__ == "__main__":
    main()
