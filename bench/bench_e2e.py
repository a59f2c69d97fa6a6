"""End-to-end benchmark: load generator -> ingress -> backend -> dispatcher -> local sinks.

`nerve up` runs as its own process (its CPU and RSS are measured with psutil); the load generator
and the sinks share this process on uvloop. Each run prints, per Trigger count:

- throughput: N events sent with C requests in flight; accepted events/s (202s), delivered
  events/s (sink receptions / time until the last one), end-to-end latency p50/p99 (send -> sink);
- latency at a fixed rate: events sent at R events/s, end-to-end p50/p99;
- the CPU (percent of one core) and peak RSS of each Nerve process during the run;
- undelivered: accepted events that had not reached every Trigger when the drain timeout ended (a
  backlog still being worked off, not a loss: the crash tests are where loss is checked).

    .venv/bin/python bench/bench_e2e.py                       # memory, 1 and 10 Triggers
    .venv/bin/python bench/bench_e2e.py --backend kafka --kafka-bootstrap 127.0.0.1:9092 --topology separate
    .venv/bin/python bench/bench_e2e.py --triggers 1 --eventtype-auto-create --sources 100   # the cost of auto-create
    .venv/bin/python bench/bench_e2e.py --tracing both --triggers 1      # the cost of tracing: off, then on
    .venv/bin/python bench/bench_e2e.py --oidc both --triggers 1         # the cost of OIDC: off, then on
    .venv/bin/python bench/bench_e2e.py --backend kafka --kafka-bootstrap 127.0.0.1:9092 --topology separate \
        --dispatchers 2 --partitions 4 --triggers 1       # 1 vs 2 dispatcher (or --ingresses 2) processes

`--eventtype-auto-create` runs Nerve with EventType auto-create on; `--sources N` spreads the events over N
`source` values (N new (type, source) pairs, so N EventTypes to create); `ingress p50/p99` is the time from
sending a request to its 202, where auto-create's cost would show.

Each line is followed by its ratios to the last run of the same scenario on another commit (`vs <commit>:
delivered x.., cpu/event x..`), from results kept under ~/.cache/nerve/bench/ (`--results-dir`), one
JSON file per scenario (backend, topology, processes, Triggers, load, tracing): the figures of every
commit's run, newest last. A ratio above 1 is more (delivered: better; cpu/event, p99: worse).

`--oidc on` turns authentication-oidc on (ConfigMap knative-eventing/config-features) and sends every event
with one bearer token from control's API, as a producer reuses its token until near expiry: the cost of the
ingress's token and EventPolicy check (`--oidc both`: off, then on). Each `on` run also prints the CPU time of one
uncached RS256 verification (what a producer sending a new token per event would cost per event) and of a
cached one.

`--tracing on` runs Nerve with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP endpoint in this
process (it takes each export and answers 200) and every span sampled (the SDK's default sampler), the
worst case; each line then says `tracing=on` and how many export requests arrived. A sampler or batching
set in the environment (`OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1`,
`OTEL_BSP_*`) applies to the `on` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

NERVE = str(Path(sys.executable).with_name("nerve"))
REPO = Path(__file__).resolve().parents[1]
# The launchers' helpers (scripts/_server.py, standard library only) serve the benchmark too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _server import free_port  # noqa: E402


@dataclass
class Sinks:
    """Every Trigger's subscriber: records when each event id arrived, per Trigger."""

    expected_per_id: int
    sent_at: dict[str, float] = field(default_factory=dict)
    arrivals: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    delivered: int = 0
    last_at: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    target: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        event_id = request.headers.get("ce-id", "")
        now = time.perf_counter()
        sent = self.sent_at.get(event_id)
        if sent is not None:
            self.latencies.append(now - sent)
        self.arrivals[event_id] = self.arrivals.get(event_id, 0) + 1
        self.delivered += 1
        self.last_at = now
        if self.delivered >= self.target:
            self.done.set()
        return web.Response(status=202)

    def reset(self, target: int) -> None:
        self.sent_at.clear()
        self.arrivals.clear()
        self.latencies.clear()
        self.delivered = 0
        self.target = target
        self.done = asyncio.Event()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def unique_names() -> list[str]:
    """Topic and group names of this run only. Kafka groups and NATS durable consumers outlive a run, as
    they should; a later run reusing the names would start behind their backlog."""
    run = uuid.uuid4().hex[:6]
    return ["--topic-template", f"bench-{run}-{{namespace}}-{{name}}",
            "--consumer-group-template", f"bench-{run}-{{namespace}}-{{name}}"]


class OtlpSink:
    """What a collector's OTLP/HTTP receiver does for the benchmark: takes each export, answers 200."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.bytes += len(await request.read())
        self.requests += 1
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")


BROKER_CLASS = {"memory": "MTChannelBasedBroker", "kafka": "Kafka", "nats": "NatsJetStreamBroker"}
"""The Broker class whose backend each --backend runs."""

LAUNCHER_DEFAULTS: dict[str, object] = {"eventtype_auto_create": False, "workers": 0, "ingresses": 1,
                                        "dispatchers": 1, "env": None}


def launcher_args(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with every option the launchers below read, defaults filled in: bench_fanout.py and
    bench_channel.py use them with options of their own (a launcher reading an option another bench lacks
    broke both once; tests/integration/test_bench_smoke.py runs each)."""
    return argparse.Namespace(**{**LAUNCHER_DEFAULTS, **vars(args)})


class SeparateServices:
    """control, ingress and dispatcher as their own processes (compose's shape): one core each at most."""

    def __init__(self, args: argparse.Namespace, state: Path) -> None:
        args = launcher_args(args)
        self.ingress, self.api, self.metrics = free_port(), free_port(), free_port()
        self.state = state
        flag = ["--kafka-bootstrap", args.kafka_bootstrap] if args.backend == "kafka" else ["--nats-url", args.nats_url]
        token = self.token = secrets.token_urlsafe(24)
        auto = ["--eventtype-auto-create", "--control-url", f"http://127.0.0.1:{self.api}",
                f"--control-token={token}"] if args.eventtype_auto_create else []
        contract = str(state / "contract.json")
        py = sys.executable
        commands = {
            "control": [
                py,
                "-m",
                "control",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api),
                "--state-dir",
                str(state),
                "--ingress-base-url",
                f"http://127.0.0.1:{self.ingress}",
                "--backend",
                args.backend,
                *flag,
                *unique_names(),
                f"--token={token}",  # one form for any token, one starting with "-" too
            ],
        }
        follow = ["--contract", contract, *flag, *auto]
        workers = ["--workers", str(args.workers)] if args.workers else []
        self.ingress_ports = [self.ingress, *(free_port() for _ in range(args.ingresses - 1))]
        # --dispatchers 0: none here (bench_dispatch.py starts its own once the backlog is in).
        self.metrics_ports = [self.metrics, *(free_port() for _ in range(args.dispatchers - 1))][:args.dispatchers]
        for i, port in enumerate(self.ingress_ports):
            commands[f"ingress{i + 1}" if args.ingresses > 1 else "ingress"] = [
                py, "-m", "ingress", "--host", "127.0.0.1", "--port", str(port), *follow, *workers]
        for i, port in enumerate(self.metrics_ports):
            commands[f"dispatcher{i + 1}" if args.dispatchers > 1 else "dispatcher"] = [
                py, "-m", "dispatcher", "--host", "127.0.0.1", "--port", str(port), *follow]
        self.log = (state / "services.log").open("wb")
        self.procs = {
            name: subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=args.env)
            for name, cmd in commands.items()
        }
        self.ps = {name: psutil.Process(p.pid) for name, p in self.procs.items()}

    async def wait_ready(self) -> None:
        await _wait_http(f"http://127.0.0.1:{self.api}/healthz")

    async def wait_applied(self) -> None:
        generation = json.loads((self.state / "contract.json").read_text())["generation"]
        for port in (*self.ingress_ports, *self.metrics_ports):
            await _wait_http(f"http://127.0.0.1:{port}/readyz", min_generation=generation)
        for name, ps in list(self.ps.items()):  # --workers: each service's worker processes count too
            for child in ps.children(recursive=True):
                self.ps[f"{name} worker {child.pid}"] = child

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.log.close()


async def _wait_http(url: str, min_generation: int = 0) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url) as r:
                    body = await r.json(content_type=None)
                    if r.status == 200 and (body or {}).get("generation", 0) >= min_generation:
                        return
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


class NerveProcess:
    """`nerve up`: everything in one process."""

    def __init__(self, args: argparse.Namespace, state: Path) -> None:
        args = launcher_args(args)
        self.ingress, self.api = free_port(), free_port()
        self.ingress_ports = [self.ingress]
        self.token = ""  # control generates one into the state dir
        cmd = [
            NERVE,
            "up",
            "--ingress-port",
            str(self.ingress),
            "--api-port",
            str(self.api),
            "--state-dir",
            str(state),
            "--backend",
            args.backend,
            *unique_names(),
        ]
        if args.kafka_bootstrap:
            cmd += ["--kafka-bootstrap", args.kafka_bootstrap]
        if args.nats_url:
            cmd += ["--nats-url", args.nats_url]
        if args.eventtype_auto_create:
            cmd.append("--eventtype-auto-create")
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        self.log = (state / "nerve.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=args.env)
        self.ps = {"nerve up": psutil.Process(self.proc.pid)}
        self.workers = args.workers

    async def wait_ready(self) -> None:
        await _wait_http(f"http://127.0.0.1:{self.api}/healthz")

    async def wait_applied(self) -> None:
        # Embedded: apply returns once the dispatcher and ingress run the new contract; ingress workers
        # (`--workers`) may still be starting, and count as Nerve's processes.
        await _wait_http(f"http://127.0.0.1:{self.ingress}/readyz")
        for child in self.ps["nerve up"].children(recursive=True):
            self.ps[f"worker {child.pid}"] = child

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def api_token(state: Path, given: str) -> str:
    """The token control was started with, or the one it generated into its state dir on first start."""
    return given or (state / "token").read_text().strip()


async def apply(session: aiohttp.ClientSession, api: int, items: list[dict[str, object]], token: str) -> None:
    async with session.post(f"http://127.0.0.1:{api}/api/v1/apply", json={"items": items},
                            headers={"Authorization": f"Bearer {token}"}) as r:
        if r.status != 200:
            raise RuntimeError(await r.text())


async def count_eventtypes(session: aiohttp.ClientSession, api: int, token: str) -> int:
    async with session.get(f"http://127.0.0.1:{api}/api/v1/resources/eventtypes", params={"namespace": "bench"},
                           headers={"Authorization": f"Bearer {token}"}) as r:
        return len((await r.json())["items"])


# Filters that never match the benchmark's events, one dialect after another: their cost is evaluation.
NON_MATCHING: list[dict[str, object]] = [
    {"filter": {"attributes": {"type": "other.event"}}},
    {"filters": [{"exact": {"type": "bench.other"}}]},
    {"filters": [{"prefix": {"source": "/elsewhere"}}]},
    {"filters": [{"suffix": {"type": ".created"}}]},
    {"filters": [{"cesql": "type = 'bench.event' AND source LIKE '/other%'"}]},
    {"filters": [{"any": [{"exact": {"type": "a"}}, {"not": {"prefix": {"type": "bench"}}}]}]},
]


def manifests(triggers: int, sink_url: str, broker_class: str, non_matching: int = 0,
              partitions: int = 1) -> list[dict[str, object]]:
    broker: dict[str, object] = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {
            "name": "bench",
            "namespace": "bench",
            "annotations": {"eventing.knative.dev/broker.class": broker_class},
        },
    }
    items: list[dict[str, object]] = [broker]
    if partitions > 1:
        # Knative's Kafka Broker ConfigMap: more partitions, so several dispatchers in one group share the work.
        items.insert(0, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "bench-broker-config", "namespace": "bench"},
                         "data": {"default.topic.partitions": str(partitions),
                                  "default.topic.replication.factor": "1"}})
        broker["spec"] = {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "bench-broker-config",
                                     "namespace": "bench"}}
    for i in range(triggers):
        items.append(
            {
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Trigger",
                "metadata": {"name": f"t{i}", "namespace": "bench"},
                "spec": {
                    "broker": "bench",
                    "filter": {"attributes": {"type": "bench.event"}},
                    "subscriber": {"uri": f"{sink_url}t{i}"},
                },
            }
        )
    for i in range(non_matching):
        items.append(
            {
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Trigger",
                "metadata": {"name": f"nomatch{i}", "namespace": "bench"},
                "spec": {
                    "broker": "bench",
                    "subscriber": {"uri": f"{sink_url}never"},
                    **NON_MATCHING[i % len(NON_MATCHING)],
                },
            }
        )
    return items


@dataclass
class Result:
    accepted: int = 0
    refused: int = 0
    seconds: float = 0.0
    started: float = 0.0
    answered: list[float] = field(default_factory=list)
    """Seconds from sending each request to its answer: the ingress's own latency."""


async def send_all(
    session: aiohttp.ClientSession,
    urls: list[str],
    sinks: Sinks,
    count: int,
    concurrency: int,
    rate: float | None,
    prefix: str,
    sources: int = 1,
    extra_headers: dict[str, str] | None = None,
) -> Result:
    result = Result()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    started = result.started = time.perf_counter()
    body = b'{"hello": "nerve", "n": 12345}'

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if rate is not None:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            event_id = f"{prefix}-{i}"
            headers = {
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-source": "/bench" if sources == 1 else f"/bench/{i % sources}",
                "ce-type": "bench.event",
                "Content-Type": "application/json",
                **(extra_headers or {}),
            }
            sinks.sent_at[event_id] = sent = time.perf_counter()
            # Round robin over the ingress replicas, as a load balancer in front of them would.
            async with session.post(urls[i % len(urls)], data=body, headers=headers) as r:
                await r.read()
                result.answered.append(time.perf_counter() - sent)
                if r.status == 202:
                    result.accepted += 1
                else:
                    result.refused += 1
                    sinks.sent_at.pop(event_id, None)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


OIDC_FEATURES: dict[str, object] = {
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config-features", "namespace": "knative-eventing"},
    "data": {"authentication-oidc": "enabled"}}


async def oidc_headers(session: aiohttp.ClientSession, api: int, token: str) -> dict[str, str]:
    """A producer's token for the bench Broker (default subject: its namespace's default service account, which
    the default allow-same-namespace mode lets in), and what one uncached verification of such a token costs."""
    from core.oidc import Issuer, SigningKey, Verifier

    audience = "eventing.knative.dev/broker/bench/bench"
    async with session.post(f"http://127.0.0.1:{api}/api/v1/tokens", json={"audience": audience},
                            headers={"Authorization": f"Bearer {token}"}) as r:
        body = await r.json()
        if r.status != 200:
            raise RuntimeError(f"token request failed {r.status}: {body}")
    # CPU time (not wall time: the machine is shared) of the check the ingress makes per request.
    issuer = Issuer(SigningKey.generate(), "http://bench")
    tokens = [issuer.mint(f"system:serviceaccount:bench:p{i}", audience)[0] for i in range(500)]
    verifier = Verifier(issuer.url, issuer.key.jwks())
    started = time.process_time()
    for t in tokens:
        verifier.verify(t, audience)
    per = (time.process_time() - started) / len(tokens) * 1e6
    cached = time.process_time()
    for _ in range(10):
        for t in tokens:
            verifier.verify(t, audience)
    hit = (time.process_time() - cached) / len(tokens) / 10 * 1e6
    print(f"oidc: one RS256 verification {per:.0f} us CPU uncached, {hit:.1f} us from the verifier's cache "
          "(the ingress's check per request with a reused token)", flush=True)
    return {"Authorization": f"Bearer {body['token']}"}


async def run_case(args: argparse.Namespace, triggers: int, tracing: bool, oidc: bool = False) -> None:
    sinks = Sinks(expected_per_id=triggers)
    otlp = OtlpSink()
    app = web.Application()
    app.router.add_post("/v1/traces", otlp.handle)
    app.router.add_post("/{trigger}", sinks.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sink_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", sink_port).start()
    # Off is off whatever this shell exports; on keeps a sampler the caller chose (OTEL_TRACES_SAMPLER=...).
    args.env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if tracing:
        args.env |= {k: v for k, v in os.environ.items() if k.startswith(("OTEL_TRACES_SAMPLER", "OTEL_BSP_"))}
        args.env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}", "OTEL_SERVICE_NAME": "bench"}
    broker_class = BROKER_CLASS[args.backend]
    with tempfile.TemporaryDirectory() as state:
        nerve: NerveProcess | SeparateServices = (
            SeparateServices(args, Path(state)) if args.topology == "separate" else NerveProcess(args, Path(state))
        )
        try:
            await nerve.wait_ready()
            connector = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:
                token = api_token(Path(state), nerve.token)
                await apply(
                    session,
                    nerve.api,
                    ([OIDC_FEATURES] if oidc else [])
                    + manifests(triggers, f"http://127.0.0.1:{sink_port}/", broker_class, args.non_matching,
                                args.partitions),
                    token,
                )
                await nerve.wait_applied()
                auth = await oidc_headers(session, nerve.api, token) if oidc else None
                urls = [f"http://127.0.0.1:{port}/bench/bench" for port in nerve.ingress_ports]
                # Warm-up: connections, JIT-free but caches and pools filled.
                sinks.reset(200 * triggers)
                await send_all(session, urls, sinks, 200, 32, None, "warm", extra_headers=auth)
                await asyncio.wait_for(sinks.done.wait(), 60)

                for label, prefix, count, rate in (
                    ("throughput", "tp", args.events, None),
                    (f"at {args.rate:.0f}/s", "rate", args.rate_events, args.rate),
                ):
                    sinks.reset(count * triggers)
                    cpu0 = {name: ps.cpu_times() for name, ps in nerve.ps.items()}
                    sample = asyncio.create_task(_sample_rss(nerve.ps))
                    # Ids unique to this run: a backlog left on a reused Kafka or NATS by an earlier run
                    # can never be counted as this run's duplicates.
                    run_prefix = f"{prefix}{uuid.uuid4().hex[:6]}"
                    result = await send_all(session, urls, sinks, count, args.concurrency, rate, run_prefix,
                                            args.sources, extra_headers=auth)
                    expected = result.accepted * triggers
                    sinks.target = expected
                    try:
                        # Big fan-outs take a while to drain on one dispatcher core; wait in proportion.
                        await asyncio.wait_for(sinks.done.wait(), max(args.drain_timeout, expected / 500))
                    except TimeoutError:
                        pass
                    peaks = await _stop_sampler(sample)
                    cpu1 = {name: ps.cpu_times() for name, ps in nerve.ps.items()}
                    # From the first send to the last reception: the span the pipeline was busy.
                    span = max(sinks.last_at - result.started, 1e-9)
                    # Each process's share of a core over the span, and its CPU per accepted event to the µs
                    # (the share alone is whole percents: ±3 µs per event at 3,000 ev/s).
                    used = {name: cpu1[name].user + cpu1[name].system - c.user - c.system for name, c in cpu0.items()}
                    usage = "  ".join(
                        f"{name} cpu={used[name] / span * 100:3.0f}% ({used[name] / max(result.accepted, 1) * 1e6:.0f} "
                        f"us/event) rss={peaks.get(name, 0) / 2**20:5.1f}MiB"
                        for name in cpu0
                    )
                    # CPU per accepted event: the steadiest comparison on a shared machine (wall times are not).
                    cpu_s = sum(cpu1[n].user + cpu1[n].system - c.user - c.system for n, c in cpu0.items())
                    usage += f"  cpu/event={cpu_s / max(result.accepted, 1) * 1e6:6.0f} us"
                    undelivered = sum(1 for i in sinks.sent_at if sinks.arrivals.get(i, 0) < triggers)
                    dups = sum(max(0, n - triggers) for n in sinks.arrivals.values())
                    extra = f"+{args.non_matching} filtered" if args.non_matching else ""
                    if args.eventtype_auto_create:
                        extra += f" auto-create eventtypes={await count_eventtypes(session, nerve.api, token)}"
                    traced = f"tracing=on ({otlp.requests} exports)" if tracing else "tracing=off"
                    traced += " oidc=on" if oidc else (" oidc=off" if args.oidc != "off" else "")
                    shape = (f"ingress x{args.ingresses} dispatcher x{args.dispatchers} "
                             if args.topology == "separate" else "")
                    figures = {"accepted": result.accepted / result.seconds, "delivered": sinks.delivered / span,
                               "p50_ms": percentile(sinks.latencies, 0.50) * 1000,
                               "p99_ms": percentile(sinks.latencies, 0.99) * 1000,
                               "ingress_p99_ms": percentile(result.answered, 0.99) * 1000,
                               "cpu_us_per_event": cpu_s / max(result.accepted, 1) * 1e6,
                               **{f"{name}_cpu_us_per_event": used[name] / max(result.accepted, 1) * 1e6
                                  for name in used}}
                    workers = f" workers={args.workers}" if args.workers else ""
                    scenario = (f"{args.backend}-{args.topology}-{shape.strip().replace(' ', '')}{workers.strip()}-"
                                f"t{triggers}{extra.split(' ')[0]}-{label.replace(' ', '').replace('/', 'per')}-"
                                f"c{args.concurrency}-{'traced' if tracing else 'untraced'}")
                    print(
                        f"{args.backend:6} {args.topology:8}{workers} {shape}triggers={triggers:<3}{extra} "
                        f"{label:12} {traced}  "
                        f"accepted={result.accepted / result.seconds:8.0f} ev/s  "
                        f"delivered={sinks.delivered / span:8.0f} ev/s  "
                        f"p50={percentile(sinks.latencies, 0.50) * 1000:7.1f} ms  "
                        f"p99={percentile(sinks.latencies, 0.99) * 1000:7.1f} ms  "
                        f"ingress p50={percentile(result.answered, 0.50) * 1000:6.2f} ms "
                        f"p99={percentile(result.answered, 0.99) * 1000:6.2f} ms  "
                        f"refused={result.refused} undelivered={undelivered} dup={dups}  {usage}  "
                        f"load={os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
                    print(f"    {compare_and_save(Path(args.results_dir), scenario, figures)}", flush=True)
        finally:
            nerve.stop()
            await runner.cleanup()


def _commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def compare_and_save(results: Path, scenario: str, figures: dict[str, float]) -> str:
    """Ratios to the newest saved run of `scenario` on another commit; then this run is saved."""
    commit = _commit()
    path = results / f"{scenario}.json"
    runs: list[dict[str, object]] = json.loads(path.read_text()) if path.exists() else []
    earlier = [run for run in runs if run.get("commit") != commit]
    line = f"scenario {scenario}: first run on record" if not earlier else ""
    if earlier:
        last = earlier[-1]
        before = last["figures"]
        assert isinstance(before, dict)
        ratios = "  ".join(f"{name} x{figures[name] / before[name]:.2f}" for name in
                           ("delivered", "accepted", "cpu_us_per_event", "p99_ms") if before.get(name))
        line = f"vs {last['commit']} ({last['at']}): {ratios}"
    runs.append({"commit": commit, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "load": os.getloadavg()[0], "figures": figures})
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs[-50:], indent=1))
    return line


async def _sample_rss(processes: dict[str, psutil.Process]) -> dict[str, int]:
    peaks = {name: ps.memory_info().rss for name, ps in processes.items()}
    try:
        while True:
            for name, ps in processes.items():
                peaks[name] = max(peaks[name], ps.memory_info().rss)
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        return peaks


async def _stop_sampler(task: asyncio.Task[dict[str, int]]) -> dict[str, int]:
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="memory", choices=["memory", "kafka", "nats"])
    parser.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", ""))
    parser.add_argument("--triggers", default="1,10", help="comma-separated Trigger counts")
    parser.add_argument("--events", type=int, default=20000, help="events in the throughput run")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s in the latency run")
    parser.add_argument("--rate-events", type=int, default=5000, help="events in the latency run")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument(
        "--non-matching",
        type=int,
        default=0,
        help="extra Triggers of mixed dialects (CESQL too) that never match: the cost of filtering",
    )
    parser.add_argument("--eventtype-auto-create", action="store_true",
                        help="run Nerve with EventType auto-create on (Knative's eventtype-auto-create)")
    parser.add_argument("--sources", type=int, default=1,
                        help="distinct ce-source values the events cycle through (new pairs for auto-create)")
    parser.add_argument(
        "--topology",
        default="embedded",
        choices=["embedded", "separate"],
        help="one `nerve up` process, or control/ingress/dispatcher as separate processes",
    )
    parser.add_argument("--ingresses", type=int, default=1,
                        help="with --topology separate: ingress processes, sent to in turn")
    parser.add_argument("--dispatchers", type=int, default=1,
                        help="with --topology separate: dispatcher processes sharing each Trigger's group")
    parser.add_argument("--partitions", type=int, default=1,
                        help="Kafka: partitions of the Broker's topic (several dispatchers need several)")
    parser.add_argument("--results-dir", default=str(Path.home() / ".cache" / "nerve" / "bench"),
                        help="where each scenario's figures are kept, to print the ratio to the last commit's run")
    parser.add_argument("--workers", type=int, default=0,
                        help="--workers N for `nerve up` (embedded) or each ingress/dispatcher (separate); "
                             "0: leave their default")
    parser.add_argument("--tracing", default="off", choices=["off", "on", "both"],
                        help="Nerve with OpenTelemetry tracing to an OTLP endpoint here; both: off, then on")
    parser.add_argument("--oidc", default="off", choices=["off", "on", "both"],
                        help="authentication-oidc on, every event with a bearer token; both: off, then on")
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.tracing]
    oidc_modes = {"off": [False], "on": [True], "both": [False, True]}[args.oidc]
    for count in (int(t) for t in args.triggers.split(",")):
        for tracing in modes:
            for oidc in oidc_modes:
                runner(run_case(args, count, tracing, oidc))


if __name__ == "__main__":
    main()
