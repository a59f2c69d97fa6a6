"""NATS server-side fan-out: a consumer per Trigger filtered on its type's subject, against one reading the
whole stream, on a real nats-server (scripts/nats_local.py) with control, ingress and dispatcher as their
own processes (bench_e2e.py's SeparateServices).

For each Trigger count N (default 1, 10, 100) one Broker gets N Triggers, Trigger k wanting type
`bench.type.<k>`, and the events cycle through those N types: exactly 1 Trigger matches each event.
Two variants in one run, each on fresh streams and groups:

- `typed`: the filter is `filter.attributes.type`, an exact type, so the Trigger's JetStream consumer
  filters on that type's subject and nats-server sends it only its own events;
- `whole`: the same match written `filters: [{all: [{exact: {type: ...}}]}]`, which Nerve does not read
  as one exact type, so every consumer reads the whole stream and the dispatcher drops N-1 of every N
  events, as every NATS Trigger did before typed subjects.

Printed per run: accepted events/s (202s), deliveries/s, and the CPU per accepted event of the
dispatcher and of nats-server (and the ingress), from the first send to the last delivery.

    .venv/bin/python bench/bench_nats_subjects.py                     # starts its own nats-server
    .venv/bin/python bench/bench_nats_subjects.py --triggers 1,10,100 --events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))
from _server import free_port  # noqa: E402
from bench_e2e import SeparateServices, api_token, apply  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.delivered = 0
        self.wrong = 0
        self.target = 0
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if request.headers.get("ce-type") != f"bench.type.{request.match_info['k']}":
            self.wrong += 1
        self.delivered += 1
        if self.delivered >= self.target:
            self.done.set()
        return web.Response(status=202)

    def reset(self, target: int) -> None:
        self.delivered, self.wrong, self.target, self.done = 0, 0, target, asyncio.Event()


def trigger(k: int, sink: str, variant: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"broker": "default", "subscriber": {"uri": f"{sink}/t/{k}"}}
    if variant == "typed":
        spec["filter"] = {"attributes": {"type": f"bench.type.{k}"}}
    else:
        spec["filters"] = [{"all": [{"exact": {"type": f"bench.type.{k}"}}]}]
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": f"t-{k}", "namespace": "bench"}, "spec": spec}


def cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


async def send_all(url: str, n_types: int, events: int, concurrency: int) -> int:
    accepted = 0
    queue = iter(range(events))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            nonlocal accepted
            for i in queue:
                headers = {"ce-specversion": "1.0", "ce-id": f"e-{i}", "ce-source": "/bench",
                           "ce-type": f"bench.type.{i % n_types}", "content-type": "application/json"}
                async with session.post(url, data=b'{"n":1}', headers=headers) as r:
                    accepted += r.status == 202
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted


async def run_one(n: int, variant: str, args: argparse.Namespace, nats_pid: int, sink: Sink, sink_url: str) -> None:
    state = Path(tempfile.mkdtemp(prefix="nerve-bench-nats-"))
    ns = argparse.Namespace(backend="nats", nats_url=args.nats_url, kafka_bootstrap="", eventtype_auto_create=False,
                            ingresses=1, dispatchers=1, env=None)
    services = SeparateServices(ns, state)
    try:
        await services.wait_ready()
        token = api_token(state, services.token)
        async with aiohttp.ClientSession() as session:
            broker = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                      "metadata": {"name": "default", "namespace": "bench"}}
            await apply(session, services.api, [broker, *(trigger(k, sink_url, variant) for k in range(n))], token)
        await services.wait_applied()
        await asyncio.sleep(1.0)  # every consumer has sent its first pull
        nats = psutil.Process(nats_pid)
        procs = {"dispatcher": services.ps["dispatcher"], "ingress": services.ps["ingress"], "nats-server": nats}
        sink.reset(args.events)
        before = {name: cpu(p) for name, p in procs.items()}
        t0 = time.perf_counter()
        accepted = await send_all(f"http://127.0.0.1:{services.ingress}/bench/default", n, args.events,
                                  args.concurrency)
        sent = time.perf_counter() - t0
        try:
            await asyncio.wait_for(sink.done.wait(), args.drain_timeout)
        except TimeoutError:
            pass
        took = time.perf_counter() - t0
        used = {name: cpu(p) - before[name] for name, p in procs.items()}
        per = {name: used[name] / max(accepted, 1) * 1e3 for name in used}
        load = os.getloadavg()[0]
        print(f"{n:>4} Triggers  {variant:<5}  accepted {accepted / sent:7,.0f} ev/s  deliveries "
              f"{sink.delivered / took:7,.0f}/s ({sink.delivered}/{accepted}, wrong {sink.wrong})  CPU ms per "
              f"accepted event: dispatcher {per['dispatcher']:.3f}, nats-server {per['nats-server']:.3f}, "
              f"ingress {per['ingress']:.3f}  (load {load:.1f})", flush=True)
    finally:
        services.stop()
        shutil.rmtree(state, ignore_errors=True)


async def main_async(args: argparse.Namespace) -> None:
    sink = Sink()
    app = web.Application()
    app.router.add_post("/t/{k}", sink.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    nats_pid = args.nats_pid
    print(f"nats-server {args.nats_url} (pid {nats_pid}); {args.events} events, {args.concurrency} in flight, "
          f"{os.cpu_count()} cores", flush=True)
    try:
        for n in (int(x) for x in args.triggers.split(",")):
            for variant in args.variants.split(","):
                await run_one(n, variant, args, nats_pid, sink, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", default="1,10,100", help="comma-separated Trigger counts")
    parser.add_argument("--variants", default="whole,typed", help="whole (every consumer reads the stream), typed")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--nats-url", default="", help="a running nats-server (then --nats-pid for its CPU)")
    parser.add_argument("--nats-pid", type=int, default=0)
    args = parser.parse_args()
    store = Path(tempfile.mkdtemp(prefix="nerve-bench-nats-server-"))
    launcher = [sys.executable, str(HERE.parent / "scripts" / "nats_local.py")]
    own = not args.nats_url
    if own:
        out = subprocess.run([*launcher, "start", "--store-dir", str(store)], check=True, capture_output=True,
                             text=True)
        args.nats_url = out.stdout.strip().splitlines()[-1]
        args.nats_pid = int(json.loads((store / "nats.json").read_text())["pid"])
    try:
        asyncio.run(main_async(args))
    finally:
        if own:
            subprocess.run([*launcher, "stop", "--store-dir", str(store)], check=False)
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
