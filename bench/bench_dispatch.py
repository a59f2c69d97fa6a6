"""Dispatcher drain benchmark: the dispatcher's own CPU per delivery, with nothing else sending.

The comparator's scenario c mixes the ingress, the load generator and the dispatcher on two cores, and its
dispatcher figures vary by ±6 % between identical runs: too much to see a change of a few per cent. Here
control and the ingress run as their own processes (Kafka or NATS), N events are accepted while no
dispatcher runs, and only then does `python -m dispatcher` start and deliver the backlog to every Trigger's
subscriber. The subscriber is a minimal HTTP/1.1 server in this process (asyncio and httptools: a few
microseconds a request, so it takes little of the machine from the dispatcher). A thread samples the
dispatcher's CPU time and the arrivals every 50 ms; the figures are over the deliveries between 10 % and
100 % of the total, so the dispatcher's start (imports, joining the group, the first fetch) is left out.

It prints per run: deliveries, deliveries/s over that span, the dispatcher's CPU µs per delivery and its
share of a core, its peak RSS, and duplicates/missing (every (event, Trigger) must arrive once).

    .venv/bin/python bench/bench_dispatch.py --kafka-bootstrap 127.0.0.1:9092 --triggers 10 --events 10000
    .venv/bin/python bench/bench_dispatch.py --kafka-bootstrap ... --repeat 3 --tree /work/wt/other

`--tree DIR` runs the dispatcher (only it) from another checkout of Nerve (its directory first on
PYTHONPATH), so two commits are compared in one invocation: the runs alternate between this tree and DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO

import aiohttp
import httptools
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import BROKER_CLASS, SeparateServices, Sinks, apply, free_port, manifests, send_all

REPO = Path(__file__).resolve().parents[1]
_ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


class _SinkProtocol(asyncio.Protocol):
    """One subscriber connection: counts each request's (path, ce-id) and answers 202."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.event_id = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"ce-id":
            self.event_id = value

    def on_message_complete(self) -> None:
        self.sink.arrived(self.url, self.event_id)
        assert self.transport is not None
        self.transport.write(_ANSWER)


class Sink:
    def __init__(self) -> None:
        self.seen: set[tuple[bytes, bytes]] = set()
        self.count = 0
        self.duplicates = 0
        self.target = 0
        self.done = asyncio.Event()

    def arrived(self, url: bytes, event_id: bytes) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()
        key = (url, event_id)
        if key in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(key)

    def reset(self, target: int) -> None:
        self.seen.clear()
        self.count = self.duplicates = 0
        self.target = target
        self.done = asyncio.Event()


class Sampler(threading.Thread):
    """(time, dispatcher CPU seconds, arrivals) every 50 ms, and the dispatcher's peak RSS."""

    def __init__(self, process: psutil.Process, sink: Sink) -> None:
        super().__init__(daemon=True)
        self.process, self.sink = process, sink
        self.samples: list[tuple[float, float, int]] = []
        self.peak_rss = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                cpu = self.process.cpu_times()
                self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            except psutil.Error:
                return
            self.samples.append((time.perf_counter(), cpu.user + cpu.system, self.sink.count))
            time.sleep(0.05)


def span(samples: list[tuple[float, float, int]], start: int, end: int) -> tuple[float, float, int]:
    """Seconds, CPU seconds and arrivals between the first samples at or past `start` and `end` arrivals."""
    first = next(s for s in samples if s[2] >= start)
    last = next((s for s in samples if s[2] >= end), samples[-1])
    return last[0] - first[0], last[1] - first[1], last[2] - first[2]


def start_dispatcher(args: argparse.Namespace, tree: str, state: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""))
    flag = ["--kafka-bootstrap", args.kafka_bootstrap] if args.backend == "kafka" else ["--nats-url", args.nats_url]
    process = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "--host", "127.0.0.1", "--port", str(free_port()), "--contract",
         str(state / "contract.json"), *flag], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tree)
    if args.pin:
        os.sched_setaffinity(process.pid, {_CPUS[-1]})  # before it starts its threads: they inherit it
    return process


_CPUS = sorted(os.sched_getaffinity(0))
"""The CPUs this process may run on when it starts (before --pin narrows its own)."""


def pin_the_rest(args: argparse.Namespace) -> None:
    """--pin: the dispatcher gets the last CPU to itself; this process (the sink), the services it starts
    and the Kafka broker listening on --kafka-bootstrap (every thread of it) share the others. On a
    2-core machine the dispatcher's figures then vary far less from run to run (the sink, Kafka and the
    ingress no longer take turns on its core)."""
    cpus = _CPUS
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least two CPUs")
    rest = set(cpus[:-1])
    os.sched_setaffinity(0, rest)
    if args.backend != "kafka":
        return
    port = int(args.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            for thread in psutil.Process(conn.pid).threads():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(thread.id, rest)
            print(f"pinned: the dispatcher on CPU {cpus[-1]}; this process, its services and Kafka "
                  f"(pid {conn.pid}) on {sorted(rest)}", flush=True)
            return
    print("pinned: Kafka's process was not found by its port; it is not pinned", flush=True)


def went_alone(args: argparse.Namespace, state: Path, name: str) -> int:
    """How many Triggers left the shared reader in this run; the log kept in --keep-logs."""
    text = (state / "services.log").read_text(errors="replace")
    if args.keep_logs:
        Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
        (Path(args.keep_logs) / f"{name}.log").write_text(text)
    return text.count("it reads on alone")


async def run_once(args: argparse.Namespace, tree: str, sink: Sink, sink_url: str) -> dict[str, float]:
    sink.reset(1 << 62)
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        state = Path(tmp)
        services = SeparateServices(argparse.Namespace(**vars(args), dispatchers=0), state)
        dispatcher: subprocess.Popen[bytes] | None = None
        try:
            await services.wait_ready()
            run = uuid.uuid4().hex[:6]
            async with aiohttp.ClientSession() as session:
                await apply(session, services.api, manifests(args.triggers, sink_url, BROKER_CLASS[args.backend], 0,
                                                             args.partitions), services.token)
                await services.wait_applied()
                sent = await send_all(session, [f"http://127.0.0.1:{services.ingress}/bench/bench"],
                                      Sinks(expected_per_id=args.triggers), args.events, args.concurrency, None, run)
            accepted = sent.accepted
            target = accepted * args.triggers
            sink.reset(target)
            dispatcher = start_dispatcher(args, tree, state, services.log)
            sampler = Sampler(psutil.Process(dispatcher.pid), sink)
            sampler.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sink.done.wait(), args.timeout)
            await asyncio.sleep(0.3)  # duplicates that come late
            sampler.stopped.set()
            sampler.join()
            seconds, cpu, n = span(sampler.samples, target // 10, target)
            services.log.flush()
            alone = went_alone(args, state, f"{Path(tree).name}-{run}")
            return {"accepted": accepted, "target": target, "arrived": len(sink.seen), "dup": sink.duplicates,
                    "per_s": n / seconds if seconds else 0.0, "us": cpu / n * 1e6 if n else 0.0,
                    "core": 100 * cpu / seconds if seconds else 0.0, "rss": sampler.peak_rss / 2**20, "alone": alone}
        finally:
            if dispatcher is not None:
                dispatcher.terminate()
                try:
                    dispatcher.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    dispatcher.kill()
            services.stop()


async def main_async(args: argparse.Namespace) -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _SinkProtocol(sink), "127.0.0.1", 0)
    sink_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    trees = [str(REPO), *args.trees]
    try:
        for rep in range(args.repeat):
            for tree in trees:
                r = await run_once(args, tree, sink, sink_url)
                name = "this" if tree == str(REPO) else Path(tree).name
                print(f"{args.backend} triggers={args.triggers} tree={name} rep={rep} "
                      f"deliveries={r['arrived']:.0f}/{r['target']:.0f} dup={r['dup']:.0f} "
                      f"rate={r['per_s']:.0f}/s dispatcher_cpu={r['us']:.1f}us/delivery "
                      f"core={r['core']:.0f}% rss={r['rss']:.0f}MiB went_alone={r['alone']:.0f} "
                      f"load={os.getloadavg()[0]:.2f}", flush=True)
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="kafka", choices=["kafka", "nats"])
    parser.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", ""))
    parser.add_argument("--triggers", type=int, default=10)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--partitions", type=int, default=10, help="Kafka: the Broker topic's (the comparator's 10)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight while filling")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tree", help="another checkout whose dispatcher alternates with this one's")
    parser.add_argument("--keep-logs", metavar="DIR", help="keep each run's service logs in DIR")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every delivery")
    parser.add_argument("--pin", action="store_true",
                        help="the dispatcher alone on the last CPU, everything else on the others (steadier)")
    args = parser.parse_args()
    args.trees = [str(Path(args.tree).resolve())] if args.tree else []
    if args.backend == "kafka" and not args.kafka_bootstrap:
        parser.error("--kafka-bootstrap (or $KAFKA_BOOTSTRAP_SERVERS) is required for --backend kafka")
    if args.backend == "nats" and not args.nats_url:
        parser.error("--nats-url (or $NATS_URL) is required for --backend nats")
    if args.pin:
        pin_the_rest(args)
    import uvloop

    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
