"""Side-by-side: Knative's Kafka Broker data plane (receiver-loom + dispatcher-loom, Java) vs Nerve.

Both run on the same local Apache Kafka, with the same topic partition count, driven by the same
load generator and the same HTTP sink (`loadgen`, Go, stdlib only). One invocation runs every
scenario on both systems, one after the other, and prints one table with Nerve/Knative ratios.

    make bench-compare                          # this, then bench_e2e.py, with the comparator's venv
    $CMP_CACHE/venv/bin/python bench/compare_knative.py --scenarios a,b --nerve-topology embedded --nerve-workers 2

Nerve's copy of ../shared/comparators/knative-kafka/run_side_by_side.py (its README says to copy it here
when Nerve's CLI changes), with the Nerve class adapted to today's CLI: `--nerve-workers N` passes
`--workers N` to `nerve up` (embedded: N ingress worker processes) or to `python -m ingress` (separate),
and every process of the system counts, worker processes included. It runs the jars and the load
generator that the comparator's own build.sh built into $CMP_CACHE (it builds nothing itself), and
kafka.sh from the comparator's directory ($NERVE_COMPARATOR_DIR, else $NERVE_SHARED_DIR or ../shared
beside the repository, then comparators/knative-kafka).

Scenarios (per Trigger count the system is started fresh: new topic, new consumer groups):
    a: 1 Trigger,  max throughput (C requests in flight) for --duration s
    b: 1 Trigger,  fixed 1000 ev/s for --duration s
    c: 10 Triggers, max throughput for --duration s
    d: 10 Triggers, fixed 200 ev/s for --duration s
    e: 100 Triggers of which 1 matches each event (the others filter on a type nobody sends), max
       throughput: every Trigger's consumer reads the whole topic in Knative, one reader does in Nerve

Figures per run: accepted ev/s (202s / send time), delivered ev/s (unique (event, Trigger)
deliveries / (first send -> last arrival)), end-to-end latency p50/p99 (ce-sendts -> sink arrival,
every arrival), lost (accepted (event, Trigger) pairs never seen when the drain ended), dup (extra
arrivals), CPU% (percent of one core, summed over the system's processes, over first send -> last
arrival) and peak RSS (MiB, peak of the processes' summed RSS, sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = Path(os.environ.get("NERVE_COMPARATOR_DIR") or
            Path(os.environ.get("NERVE_SHARED_DIR", REPO.parent / "shared")) / "comparators" / "knative-kafka")
CACHE = Path(os.environ.get("CMP_CACHE", Path.home() / ".cache" / "comparators" / "knative-kafka"))
DP = CACHE / "src" / "data-plane"
LOADGEN = CACHE / "bin" / "loadgen"
RECEIVER_JAR = DP / "receiver-loom" / "target" / "receiver-loom-1.0-SNAPSHOT.jar"
DISPATCHER_JAR = DP / "dispatcher-loom" / "target" / "dispatcher-loom-1.0-SNAPSHOT.jar"

SCENARIOS = {
    "a": (1, None),
    "b": (1, 1000.0),
    "c": (10, None),
    "d": (10, 200.0),
    "e": (100, None),
}
"""Per scenario: the Triggers on the Broker, and a fixed rate (None: as fast as it takes them)."""
MATCHING = {100: 1}
"""Of that many Triggers, how many match every event (the rest filter on a type nobody sends): the
issue's 'read once' case, 100 Triggers of which 1 matches. Unlisted: all of them match."""


def trigger_paths(triggers: int) -> tuple[list[str], list[str]]:
    """The Triggers' sink paths: those that match every event (the load generator counts them) and the
    rest, which match none."""
    matching = MATCHING.get(triggers, triggers)
    return [f"t{i}" for i in range(matching)], [f"t{i}" for i in range(matching, triggers)]


def trigger_type(path: str, idle: list[str]) -> str:
    return f"loadgen.none.{path}" if path in idle else "loadgen.event"


def log(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: object | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None and not isinstance(body, bytes):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, timeout: float, ok=lambda status, body: status == 200) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            status, body = http("GET", url, timeout=2)
            if ok(status, body):
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def java_bin() -> str:
    jh = os.environ.get("JAVA_HOME") or (CACHE / "java_home").read_text().strip()
    return str(Path(jh) / "bin" / "java")


# ------------------------------------------------------------------------------------ Kafka

async def _admin(bootstrap: str, create: list[tuple[str, int]] = (), delete: list[str] = ()) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(t, p, 1) for t, p in create])
        if delete:
            try:
                await admin.delete_topics(list(delete))
            except Exception as exc:  # noqa: BLE001  # a topic already gone is fine
                log("delete topics:", exc)
    finally:
        await admin.close()


def kafka_admin(bootstrap: str, **kw) -> None:
    asyncio.run(_admin(bootstrap, **kw))


def kafka_pid(bootstrap: str) -> int | None:
    port = int(bootstrap.rsplit(":", 1)[1])
    try:
        for c in psutil.net_connections("tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return c.pid
    except psutil.AccessDenied:
        pass
    return None


# ------------------------------------------------------------------------------------ systems

class Procs:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        out = (self.workdir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.workdir, start_new_session=True)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_bytes()[-3000:].decode(errors="replace")
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{tail}")

    def stop(self, sig=signal.SIGTERM) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(sig)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def ps(self) -> dict[str, psutil.Process]:
        """Every process of the system: the started ones and their children (Nerve's --workers)."""
        found = {}
        for n, p in self.procs.items():
            proc = psutil.Process(p.pid)
            found[n] = proc
            for child in proc.children(recursive=True):
                found[f"{n}-worker-{child.pid}"] = child
        return found


class Knative:
    name = "knative"

    def __init__(self, args, bootstrap: str, sink: str, triggers: int, run_id: str, workdir: Path) -> None:
        self.topic = f"knative-broker-cmp-{run_id}"
        self.paths, idle = trigger_paths(triggers)
        self.port = free_port()
        self.procs = Procs(workdir)
        kafka_admin(bootstrap, create=[(self.topic, args.partitions)])
        self.topics_to_delete = [self.topic]
        # Kafka client / Vert.x settings: the production ConfigMap of the built commit, verbatim.
        cm = yaml.safe_load((DP / "config" / "broker" / "100-config-kafka-broker-data-plane.yaml").read_text())
        for key, value in cm["data"].items():
            if key.endswith(".properties"):
                if "httpserver" in key:
                    value += "host=127.0.0.1\n"  # bind to loopback only (the manifests bind every address)
                (workdir / key).write_text(value)
        obs = workdir / "observability"
        obs.mkdir()
        contract = {
            "generation": "1",
            "resources": [{
                "uid": f"broker-{run_id}",
                "topics": [self.topic],
                "bootstrapServers": bootstrap,
                "ingress": {"path": "/cmp/broker"},
                "reference": {"uuid": f"broker-{run_id}", "namespace": "cmp", "name": "broker", "kind": "Broker"},
                "egresses": [{
                    "consumerGroup": f"knative-trigger-cmp-{run_id}-{p}",
                    "destination": f"{sink}/{p}",
                    "uid": f"trigger-{run_id}-{p}",
                    "filter": {"attributes": {"type": trigger_type(p, idle)}},
                    "reference": {"uuid": f"trigger-{run_id}-{p}", "namespace": "cmp", "name": p, "kind": "Trigger"},
                } for p in self.paths + idle],
            }],
        }
        (workdir / "contract.json").write_text(json.dumps(contract, indent=1))
        common = dict(os.environ)
        common.update({
            "PRODUCER_CONFIG_FILE_PATH": str(workdir / "config-kafka-broker-producer.properties"),
            "CONSUMER_CONFIG_FILE_PATH": str(workdir / "config-kafka-broker-consumer.properties"),
            "HTTPSERVER_CONFIG_FILE_PATH": str(workdir / "config-kafka-broker-httpserver.properties"),
            "WEBCLIENT_CONFIG_FILE_PATH": str(workdir / "config-kafka-broker-webclient.properties"),
            "DATA_PLANE_CONFIG_FILE_PATH": str(workdir / "contract.json"),
            "CONFIG_OBSERVABILITY_PATH": str(obs),
            "CONFIG_FEATURES_PATH": "",
            "LIVENESS_PROBE_PATH": "/healthz",
            "READINESS_PROBE_PATH": "/readyz",
            "METRICS_PATH": "/metrics",
            "METRICS_PUBLISH_QUANTILES": "false",
            "METRICS_JVM_ENABLED": "false",
            "EGRESSES_INITIAL_CAPACITY": "20",
            "HTTP2_DISABLE": "true",
            # As config/broker/500-receiver.yaml sets it: 1 s (the copy it came from) is too short for the
            # verticles to deploy on a busy 2-core machine, and the receiver then exits at start.
            "WAIT_STARTUP_SECONDS": "8",
            "ENABLE_VIRTUAL_THREADS": "true",
            "SERVICE_NAMESPACE": "knative-eventing",
        })
        logging = ["-Dlogback.configurationFile=" + str(DP / "profiler" / "resources" / "config-logging.xml")]
        java = java_bin()
        env_r = dict(common, SERVICE_NAME="kafka-broker-receiver", INGRESS_PORT=str(self.port),
                     INGRESS_TLS_PORT=str(free_port()), METRICS_PORT=str(free_port()), INSTANCE_ID="receiver")
        # JAVA_TOOL_OPTIONS of the production manifests (config/broker/500-*.yaml): the receiver has
        # no heap setting; the dispatcher's 70% of its 1000Mi limit is 700 MiB.
        self.procs.start("receiver", [java, "-XX:+CrashOnOutOfMemoryError", *args.receiver_jvm.split(), *logging,
                                      "-jar", str(RECEIVER_JAR)], env_r)
        env_d = dict(common, SERVICE_NAME="kafka-broker-dispatcher", INGRESS_PORT=str(free_port()),
                     INGRESS_TLS_PORT=str(free_port()), METRICS_PORT=str(free_port()), INSTANCE_ID="dispatcher")
        self.procs.start("dispatcher", [java, "-XX:+CrashOnOutOfMemoryError", *args.dispatcher_jvm.split(), *logging,
                                        "-jar", str(DISPATCHER_JAR)], env_d)
        self.url = f"http://127.0.0.1:{self.port}/cmp/broker"

    def wait_ready(self) -> None:
        end = time.time() + 90
        while time.time() < end:
            self.procs.check_alive()
            try:
                if http("GET", f"http://127.0.0.1:{self.port}/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("knative receiver not ready")

    def stop(self) -> None:
        self.procs.stop()


class Nerve:
    name = "nerve"

    def __init__(self, args, bootstrap: str, sink: str, triggers: int, run_id: str, workdir: Path) -> None:
        self.paths, self.idle = trigger_paths(triggers)
        self.ingress, self.api, self.dport = free_port(), free_port(), free_port()
        self.state = workdir / "state"
        self.state.mkdir()
        self.procs = Procs(workdir)
        self.topology = args.nerve_topology
        names = ["--topic-template", f"cmp-{run_id}-{{namespace}}-{{name}}",
                 "--consumer-group-template", f"cmp-{run_id}-{{namespace}}-{{name}}"]
        self.topics_to_delete = [f"cmp-{run_id}-cmp-broker"]
        venv_bin = Path(args.nerve_venv) / "bin"
        py = str(venv_bin / "python")
        kafka = ["--kafka-bootstrap", bootstrap]
        workers = ["--workers", str(args.nerve_workers)] if args.nerve_workers else []
        if self.topology == "embedded":
            self.procs.start("nerve", [str(venv_bin / "nerve"), "up", "--host", "127.0.0.1",
                                       "--ingress-port", str(self.ingress), "--api-port", str(self.api),
                                       "--state-dir", str(self.state), "--backend", "kafka", *kafka, *names,
                                       *workers])
        else:
            contract = str(self.state / "contract.json")
            self.procs.start("control", [py, "-m", "control", "--host", "127.0.0.1", "--port", str(self.api),
                                         "--state-dir", str(self.state), "--ingress-base-url",
                                         f"http://127.0.0.1:{self.ingress}", "--backend", "kafka", *kafka, *names])
            self.procs.start("ingress", [py, "-m", "ingress", "--host", "127.0.0.1", "--port", str(self.ingress),
                                         "--contract", contract, *kafka, *workers])
            dworkers = ["--workers", str(args.nerve_dispatcher_workers)] if args.nerve_dispatcher_workers else []
            self.procs.start("dispatcher", [py, "-m", "dispatcher", "--host", "127.0.0.1", "--port",
                                            str(self.dport), "--contract", contract, *kafka, *dworkers])
        self.bootstrap, self.sink, self.partitions = bootstrap, sink, args.partitions
        self.url = f"http://127.0.0.1:{self.ingress}/cmp/broker"

    def wait_ready(self) -> None:
        end = time.time() + 90
        while True:
            self.procs.check_alive()
            try:
                if http("GET", f"http://127.0.0.1:{self.api}/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > end:
                raise RuntimeError("nerve control API not ready")
            time.sleep(0.3)
        items = [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kafka-broker-config", "namespace": "cmp"},
             "data": {"bootstrap.servers": self.bootstrap, "default.topic.partitions": str(self.partitions),
                      "default.topic.replication.factor": "1"}},
            {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
             "metadata": {"name": "broker", "namespace": "cmp",
                          "annotations": {"eventing.knative.dev/broker.class": "Kafka"}},
             "spec": {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "kafka-broker-config",
                                 "namespace": "cmp"}}},
        ] + [
            {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": p, "namespace": "cmp"},
             "spec": {"broker": "broker", "filter": {"attributes": {"type": trigger_type(p, self.idle)}},
                      "subscriber": {"uri": f"{self.sink}/{p}"}}}
            for p in self.paths + self.idle
        ]
        # The control API takes its bearer token, which control wrote into its state dir on first start.
        token = (self.state / "token").read_text().strip()
        status, body = http("POST", f"http://127.0.0.1:{self.api}/api/v1/apply", {"items": items},
                            headers={"Authorization": f"Bearer {token}"}, timeout=60)
        if status != 200:
            raise RuntimeError(f"nerve apply: {status} {body[:500]!r}")
        if self.topology == "embedded":
            # `nerve up` answers apply once its workers route the new contract; they start after control.
            wait_http(f"http://127.0.0.1:{self.ingress}/readyz", 60)
        else:
            gen = json.loads((self.state / "contract.json").read_text())["generation"]
            for port in (self.ingress, self.dport):
                wait_http(f"http://127.0.0.1:{port}/readyz", 60,
                          lambda s, b: s == 200 and (json.loads(b or b"{}") or {}).get("generation", 0) >= gen)

    def stop(self) -> None:
        self.procs.stop(signal.SIGTERM if self.topology != "embedded" else signal.SIGINT)


# ------------------------------------------------------------------------------------ measuring

def busy_cpu() -> float:
    """Seconds of CPU the whole machine spent busy so far (all cores)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def wait_quiet(max_other_pct: float, max_wait: float) -> float:
    """Wait (at most max_wait s) until the machine's busy CPU over 3 s is under max_other_pct of one core:
    other jobs on a 2-core machine skew every figure. Returns the last measured busy percentage."""
    end = time.time() + max_wait
    while True:
        b0, t0 = busy_cpu(), time.time()
        time.sleep(3)
        pct = 100 * (busy_cpu() - b0) / (time.time() - t0)
        if pct <= max_other_pct or time.time() > end:
            if pct > max_other_pct:
                log(f"machine still busy ({pct:.0f}% of a core by others); measuring anyway")
            return pct
        log(f"machine busy ({pct:.0f}% of a core by others); waiting")
        time.sleep(7)


class Sampler:
    """CPU time and RSS of named processes, sampled every 0.2 s in a thread."""

    def __init__(self, groups: dict[str, dict[str, psutil.Process]]) -> None:
        self.groups = groups
        self.peak: dict[str, int] = {g: 0 for g in groups}
        self.peak_proc: dict[str, int] = {}
        self._stop = threading.Event()
        self.cpu0 = self._cpu()
        self.t0 = time.time()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _cpu(self) -> dict[str, float]:
        out = {}
        for g, procs in self.groups.items():
            for n, p in procs.items():
                try:
                    t = p.cpu_times()
                    out[f"{g}/{n}"] = t.user + t.system
                except psutil.Error:
                    out[f"{g}/{n}"] = float("nan")
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            for g, procs in self.groups.items():
                total = 0
                for n, p in procs.items():
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    key = f"{g}/{n}"
                    self.peak_proc[key] = max(self.peak_proc.get(key, 0), rss)
                self.peak[g] = max(self.peak[g], total)
            self._stop.wait(0.2)

    def finish(self) -> tuple[dict[str, float], float]:
        self._stop.set()
        self.thread.join()
        cpu1 = self._cpu()
        return {k: cpu1[k] - self.cpu0[k] for k in cpu1}, time.time() - self.t0


def loadgen_send(args, url: str, sink: str, paths: list[str], rate: float | None, duration: float,
                 extra: list[str] = ()) -> tuple[dict, subprocess.Popen]:
    cmd = [str(LOADGEN), "send", "--url", url, "--sink", sink, "--triggers", ",".join(paths),
           "--duration", f"{duration}s", "--concurrency", str(args.concurrency),
           "--max-events", str(args.max_events), "--drain", f"{args.drain}s", "--idle", f"{args.idle}s", *extra]
    if rate:
        cmd += ["--rate", str(rate)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return cmd, p


def probe_until_flowing(url: str, sink: str, paths: list[str], timeout: float = 90) -> float:
    """Single events until every Trigger got one: consumers joined and positioned (offset reset: latest)."""
    prefix = f"probe{random.randrange(1 << 30):x}"
    t0 = time.time()
    i = 0
    while time.time() - t0 < timeout:
        headers = {"Ce-Specversion": "1.0", "Ce-Id": f"{prefix}-{i}", "Ce-Source": "/probe",
                   "Ce-Type": "loadgen.event", "Content-Type": "application/json",
                   "Ce-Sendts": str(time.time_ns())}
        try:
            http("POST", url, b"{}", headers, timeout=5)
        except OSError:
            pass
        i += 1
        time.sleep(0.3)
        _, body = http("POST", f"{sink}/_stats", {"prefix": prefix, "sent": i, "refused": [], "paths":
                                                     ["/" + p for p in paths]})
        per = json.loads(body).get("per_path") or {}
        if all(per.get("/" + p, 0) > 0 for p in paths):
            return time.time() - t0
    raise RuntimeError(f"events never reached all {len(paths)} Triggers")


def nerve_label(args) -> str:
    workers = f" x{args.nerve_workers}" if args.nerve_workers else ""
    if args.nerve_dispatcher_workers:
        workers += f" d{args.nerve_dispatcher_workers}"
    return f"({args.nerve_topology}{workers})"


def run_system(cls, args, bootstrap: str, sink: str, sink_ps: psutil.Process, kpid: int | None,
               triggers: int, scenarios: list[str], rep: int) -> list[dict]:
    idle_before = wait_quiet(args.quiet_pct, args.quiet_wait)
    run_id = f"{random.randrange(1 << 24):06x}"
    workdir = Path(tempfile.mkdtemp(prefix=f"cmp-{cls.name}-{triggers}-", dir=args.workdir))
    log(f"{cls.name}: start, {triggers} Trigger(s), run {run_id}, logs in {workdir}")
    system = cls(args, bootstrap, sink, triggers, run_id, workdir)
    rows = []
    try:
        t_start = time.time()
        system.wait_ready()
        probe_s = probe_until_flowing(system.url, sink, system.paths)
        log(f"{cls.name}: ready in {time.time() - t_start:.1f}s (flowing after {probe_s:.1f}s of probes)")
        # Warm-up: JIT, connection pools, caches. Same for both.
        _, p = loadgen_send(args, system.url, sink, system.paths, None, args.warmup,
                            ["--max-events", str(max(1000, args.warmup_deliveries // len(system.paths)))])
        out, err = p.communicate()
        w = json.loads(out)
        log(f"{cls.name}: warm-up {w['accepted']} accepted, drained={w['drained']} lost={w['stats']['lost']}")
        for sc in scenarios:
            n, rate = SCENARIOS[sc]
            rate = args.rate_1 if (rate and n == 1) else (args.rate_10 if rate else None)
            system.procs.check_alive()
            groups = {"sut": system.procs.ps(), "sink": {"sink": sink_ps}}
            if kpid:
                groups["kafka"] = {"kafka": psutil.Process(kpid)}
            la = os.getloadavg()[0]
            sampler = Sampler(groups)
            busy0 = busy_cpu()
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            _cmd, p = loadgen_send(args, system.url, sink, system.paths, rate, args.duration,
                                  ["--series"] if args.series else [])
            out, err = p.communicate()
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            sender_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
            cpu, wall = sampler.finish()
            busy = busy_cpu() - busy0
            if p.returncode != 0:
                raise RuntimeError(f"loadgen failed: {err.decode()[-2000:]}")
            r = json.loads(out)
            span = r["delivery_span_s"] or wall
            sut_cpu = sum(v for k, v in cpu.items() if k.startswith("sut/"))
            row = {
                "system": cls.name + (nerve_label(args) if cls is Nerve else ""),
                "scenario": sc, "triggers": n, "rate": rate, "rep": rep, "loadavg_before": la,
                "accepted_per_s": r["accepted_per_s"], "delivered_per_s": r["delivered_per_s"],
                "events_delivered_per_s": r["delivered_per_s"] / len(system.paths),
                "p50_ms": r["stats"]["p50_ms"], "p99_ms": r["stats"]["p99_ms"], "max_ms": r["stats"]["max_ms"],
                "accepted": r["accepted"], "refused": r["refused"], "errors": r["errors"],
                "lost": r["stats"]["lost"], "dup": r["stats"]["duplicates"], "drained": r["drained"],
                "per_path": r["stats"].get("per_path"),
                "drain_s": r["drain_seconds"], "span_s": span,
                "cpu_pct": 100 * sut_cpu / span,
                "cpu_proc": {k.split("/", 1)[1]: round(100 * v / span) for k, v in cpu.items() if k.startswith("sut/")},
                "rss_mib": sampler.peak["sut"] / 2**20,
                "rss_proc": {k.split("/", 1)[1]: round(v / 2**20) for k, v in sampler.peak_proc.items()
                             if k.startswith("sut/")},
                "cpu_ms_per_delivery": 1000 * sut_cpu / max(1, r["stats"]["unique"]),
                "kafka_cpu_pct": 100 * cpu.get("kafka/kafka", float("nan")) / span,
                "loadgen_cpu_pct": 100 * (cpu.get("sink/sink", 0) + sender_cpu) / span,
                # Everything else the machine ran meanwhile (other jobs), in % of one core.
                "other_cpu_pct": 100 * (busy - sum(v for v in cpu.values() if v == v) - sender_cpu) / wall,
                "idle_before_pct": idle_before,
                "status_counts": r["status_counts"],
                "series": r["stats"].get("series"),
                "workdir": str(workdir),
            }
            rows.append(row)
            log(f"{row['system']} {sc}: acc={row['accepted_per_s']:.0f}/s del={row['delivered_per_s']:.0f}/s "
                f"p50={row['p50_ms']:.1f} p99={row['p99_ms']:.1f} lost={row['lost']} dup={row['dup']} "
                f"cpu={row['cpu_pct']:.0f}% {row['cpu_proc']} rss={row['rss_mib']:.0f}MiB {row['rss_proc']} "
                f"kafka={row['kafka_cpu_pct']:.0f}% loadgen={row['loadgen_cpu_pct']:.0f}% "
                f"others={row['other_cpu_pct']:.0f}%")
            time.sleep(args.pause)
    finally:
        system.stop()
        kafka_admin(bootstrap, delete=system.topics_to_delete)
    return rows


# ------------------------------------------------------------------------------------ report

COLS = [("accepted_per_s", "acc ev/s", "{:.0f}"), ("events_delivered_per_s", "del ev/s", "{:.0f}"),
        ("delivered_per_s", "deliv/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"),
        ("lost", "lost", "{:d}"), ("dup", "dup", "{:d}"), ("cpu_pct", "CPU%", "{:.0f}"),
        ("rss_mib", "RSS MiB", "{:.0f}"), ("cpu_ms_per_delivery", "CPUms/dlv", "{:.3f}"),
        ("kafka_cpu_pct", "kafka%", "{:.0f}"), ("loadgen_cpu_pct", "lg%", "{:.0f}"),
        ("other_cpu_pct", "others%", "{:.0f}")]


def table(rows: list[dict]) -> str:
    head = f"{'scen':4} {'trig':>4} {'rate':>6} {'rep':>3} {'system':18}" + "".join(f" {h:>10}" for _, h, _ in COLS)
    lines = [head, "-" * len(head)]
    for r in rows:
        rate = f"{r['rate']:.0f}" if r["rate"] else "max"
        lines.append(f"{r['scenario']:4} {r['triggers']:>4} {rate:>6} {r['rep']:>3} {r['system']:18}" +
                     "".join(" " + f"{fmt.format(r[k]):>10}" for k, _, fmt in COLS))
    # Ratios Nerve/Knative per scenario, on the medians over repetitions.
    lines.append("")
    lines.append("Ratios Nerve/Knative (median over repetitions; >1 means Nerve's figure is larger):")
    rh = f"{'scen':4} {'nerve':18}" + "".join(f" {h:>10}" for k, h, _ in COLS if k not in ("lost", "dup"))
    lines.append(rh)
    for sc in sorted({r["scenario"] for r in rows}):
        kn = [r for r in rows if r["scenario"] == sc and r["system"].startswith("knative")]
        for variant in sorted({r["system"] for r in rows if r["scenario"] == sc and r["system"].startswith("nerve")}):
            ne = [r for r in rows if r["scenario"] == sc and r["system"] == variant]
            if not kn or not ne:
                continue
            cells = []
            for k, _, _ in COLS:
                if k in ("lost", "dup"):
                    continue
                a, b = median([r[k] for r in ne]), median([r[k] for r in kn])
                cells.append(f"{(a / b if b else float('nan')):10.2f}")
            lines.append(f"{sc:4} {variant:18} " + " ".join(cells))
    return "\n".join(lines)


def median(v: list[float]) -> float:
    s = sorted(v)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def find_nerve_venv() -> str:
    """The project's own venv when run from the project's root (`make install` builds it)."""
    here = Path.cwd() / ".venv"
    return str(here) if (here / "bin" / "nerve").exists() else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""),
                    help="a running Kafka (default: start one with kafka.sh beside this file, stopped at the end)")
    ap.add_argument("--scenarios", default="a,b,c,d")
    ap.add_argument("--systems", default="knative,nerve")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions; the system order alternates")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of sending per scenario")
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds of max-rate warm-up after each start")
    ap.add_argument("--warmup-deliveries", type=int, default=60000,
                    help="...but at most this many (event, Trigger) deliveries (events = this / Triggers)")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (max and rate modes)")
    ap.add_argument("--max-events", type=int, default=1_000_000)
    ap.add_argument("--rate-1", type=float, default=1000.0, help="fixed rate of scenario b")
    ap.add_argument("--rate-10", type=float, default=200.0, help="fixed rate of scenario d")
    ap.add_argument("--partitions", type=int, default=10)
    ap.add_argument("--drain", type=float, default=300.0, help="max seconds to wait for deliveries after sending")
    ap.add_argument("--idle", type=float, default=30.0, help="stop draining after this long without progress")
    ap.add_argument("--pause", type=float, default=2.0, help="seconds between scenarios")
    ap.add_argument("--nerve-venv", default=os.environ.get("NERVE_VENV", "") or find_nerve_venv(),
                    help="venv with Nerve installed (bin/nerve, bin/python)")
    ap.add_argument("--nerve-topology", default="separate", choices=["separate", "embedded"])
    ap.add_argument("--nerve-dispatcher-workers", type=int, default=0,
                    help="separate topology: `python -m dispatcher --workers N` (N processes sharing the "
                         "Broker topic's partitions); 0: one process")
    ap.add_argument("--nerve-workers", type=int, default=0,
                    help="--workers N for Nerve (embedded: ingress worker processes of nerve up; separate: of "
                         "python -m ingress); 0 leaves Nerve's default")
    ap.add_argument("--receiver-jvm", default="", help="extra JVM flags for the receiver")
    ap.add_argument("--dispatcher-jvm", default="-Xms700m -Xmx700m", help="extra JVM flags for the dispatcher")
    ap.add_argument("--quiet-pct", type=float, default=25.0,
                    help="before each system start, wait until the machine's busy CPU is under this %% of a core")
    ap.add_argument("--quiet-wait", type=float, default=180.0, help="...but wait at most this long (s)")
    ap.add_argument("--series", action="store_true",
                    help="keep per-second latency series (arrivals, p50, p99, max) in the --json rows")
    ap.add_argument("--workdir", default=str(CACHE / "runs"))
    ap.add_argument("--json", default="", help="write all rows to this JSON file")
    ap.add_argument("--report", nargs="+", metavar="JSON",
                    help="run nothing: print the table of rows saved by earlier --json runs (medians across them)")
    args = ap.parse_args()
    if args.nerve_venv:
        args.nerve_venv = str(Path(args.nerve_venv).resolve())  # the systems start in their own directories
    if args.report:
        rows = [r for f in args.report for r in json.loads(Path(f).read_text())]
        rows.sort(key=lambda r: (r["scenario"], r["system"], r.get("started", 0)))
        print(table(rows))
        return
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    for f in (LOADGEN, RECEIVER_JAR, DISPATCHER_JAR):
        if not f.exists():
            sys.exit(f"missing {f}: run {HERE / 'build.sh'} first (its README says how)")
    if "nerve" in args.systems and not (Path(args.nerve_venv) / "bin" / "nerve").exists():
        sys.exit("no Nerve venv: pass --nerve-venv DIR (`make install` in the checkout builds .venv)")

    started_kafka = False
    bootstrap = args.kafka_bootstrap
    kafka_sh = HERE / "kafka.sh"
    # kafka.sh keeps its run dir under $XDG_CACHE_HOME: point it at our own cache so that a
    # concurrent `kafka.sh start|stop` of someone else never wipes or stops ours.
    kafka_env = dict(os.environ, XDG_CACHE_HOME=str(CACHE / "kafka-xdg"))
    if not bootstrap:
        out = subprocess.run(["bash", str(kafka_sh), "start"], capture_output=True, text=True, check=True,
                             env=kafka_env).stdout
        bootstrap = next(line.split("=", 1)[1] for line in out.splitlines()
                         if line.startswith("KAFKA_BOOTSTRAP_SERVERS="))
        started_kafka = True
    kpid = kafka_pid(bootstrap)
    log(f"kafka {bootstrap} pid={kpid}; nerve venv {args.nerve_venv}; java {java_bin()}")

    sink_proc = subprocess.Popen([str(LOADGEN), "sink", "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE)
    line = sink_proc.stdout.readline().decode()
    sink = "http://" + line.strip().split("=", 1)[1]
    sink_ps = psutil.Process(sink_proc.pid)
    rows: list[dict] = []
    try:
        wanted = [s for s in args.scenarios.split(",") if s]
        systems = {"knative": Knative, "nerve": Nerve}
        order = [systems[s] for s in args.systems.split(",")]
        for rep in range(args.repeat):
            for triggers in sorted({SCENARIOS[s][0] for s in wanted}):
                scs = [s for s in wanted if SCENARIOS[s][0] == triggers]
                if not scs:
                    continue
                for cls in (order if rep % 2 == 0 else order[::-1]):
                    rows.extend(run_system(cls, args, bootstrap, sink, sink_ps, kpid, triggers, scs, rep))
    finally:
        sink_proc.terminate()
        sink_proc.wait()
        if started_kafka:
            subprocess.run(["bash", str(kafka_sh), "stop"], env=kafka_env)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    rows.sort(key=lambda r: (r["scenario"], r["rep"], r["system"]))
    print()
    print(f"Kafka {bootstrap}, {args.partitions} partitions; {args.duration:.0f}s per scenario; "
          f"{args.concurrency} requests in flight; cores={os.cpu_count()}")
    print(table(rows))


if __name__ == "__main__":
    main()
