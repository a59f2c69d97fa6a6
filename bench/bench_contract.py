"""Scale of the contract: one Broker and N Triggers applied to `nerve up` (memory backend), and what it costs.

For each N (default 1,000 and 10,000) and each way of applying (`file`: one `nerve apply -f` of a file with
the Broker and every Trigger; `api`: POST /api/v1/apply in batches of --batch), a fresh `nerve up` runs as
its own process (its CPU and RSS measured with psutil) and the bench prints:

- apply returns: the wall time of the `nerve apply -f` command (YAML parse included) or of all the batches;
- all Ready: until every Trigger reads Ready=True through the control API (GET /api/v1/resources/triggers);
- contract holds N: until the contract file (what a data plane following the file sees) names N egresses
  on the Broker, and at which generation; polled every 10 ms by a thread of this process;
- the contract's size in bytes (file), and GET /api/v1/contract (the long poll's answer) plain and with
  Accept-Encoding: gzip: bytes on the wire and time;
- CPU (seconds of `nerve up`, user + system, from before the apply to all Ready) and RSS after;
- one more Trigger added to the N-Trigger Broker: apply returns, contract file holds N + 1, CPU seconds.

Each Trigger has its own subscriber URL (paths on one address nothing listens on: no event is sent, so no
delivery is attempted) and a `type` filter. Nothing here is pass/fail; the figures are for
docs/performance.md "Scale of the contract". Noisy on a shared machine: the load average is printed.

    .venv/bin/python bench/bench_contract.py                          # 1,000 and 10,000, file then api
    .venv/bin/python bench/bench_contract.py --triggers 10000 --modes file
    .venv/bin/python bench/bench_contract.py --profile /tmp/apply.svg  # py-spy record of nerve up (needs root)

`--control-only` measures control's own code and nothing else: ControlService (control/service.py) runs in
this process on SQLite with the contract written to a file (as `python -m control` publishes it), with no
dispatcher, no HTTP and no `nerve apply` process. The Broker and N Triggers are one apply, parsed from one
JSON body as the control API parses what `nerve apply -f` sends. It prints CPU seconds (this process, user +
system) and wall time for: the apply (admission, the store's writes, the reconcile pass and the contract
written), a resync pass with nothing changed, and one more Trigger; and beside each the store writes it made
(resourceVersions used), the SQLite statements (the store's execute calls; an executemany is one) and the Trigger
builds (the reconciler's cache misses). `--profile out.txt` writes
cProfile's figures of each phase (sorted by own time, then by cumulative time) next to `out.txt`; for py-spy
run the whole bench under it (`.venv/bin/py-spy record -o out.svg -- .venv/bin/python bench/... --control-only`).

    .venv/bin/python bench/bench_contract.py --control-only --triggers 10000
    .venv/bin/python bench/bench_contract.py --control-only --triggers 10000 --profile /tmp/control.txt
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import io
import os
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psutil

BIN = Path(sys.executable).parent
NERVE = str(BIN / "nerve")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _server import free_port  # noqa: E402

NAMESPACE = "bench"
BROKER = "default"


def broker() -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": BROKER, "namespace": NAMESPACE}}


def trigger(i: int, sink: str) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": f"t-{i:05d}", "namespace": NAMESPACE},
            "spec": {"broker": BROKER, "filter": {"attributes": {"type": f"bench.type.{i}"}},
                     "subscriber": {"uri": f"{sink}/t/{i}"}}}


def yaml_file(path: Path, docs: list[dict[str, Any]]) -> None:
    # JSON is YAML: one document per `---`, as a user's generated manifests would be.
    path.write_bytes(b"\n---\n".join(orjson.dumps(d) for d in docs) + b"\n")


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 600.0) -> tuple[int, bytes, dict[str, str]]:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def ready_triggers(self) -> int:
        status, body, _ = self.call("GET", f"/api/v1/resources/triggers?namespace={NAMESPACE}")
        if status != 200:
            raise SystemExit(f"list triggers: {status} {body[:300]!r}")
        ready = 0
        for t in orjson.loads(body)["items"]:
            conds = (t.get("status") or {}).get("conditions") or []
            ready += any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
        return ready


class ContractWatch:
    """Polls the contract file: when it first names `want` egresses on the bench Broker, at which generation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._want = -1
        self._start = 0.0
        self.seen_at: float | None = None
        self.generation = 0
        self.size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._mtime: tuple[int, int] = (0, 0)
        self._thread.start()

    def expect(self, want: int) -> None:
        self.seen_at, self._start, self._want = None, time.monotonic(), want

    def _egresses(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        if (st.st_mtime_ns, st.st_size) == self._mtime:
            return None
        self._mtime = (st.st_mtime_ns, st.st_size)
        data = self.path.read_bytes()
        obj = orjson.loads(data)
        for r in obj.get("resources") or []:
            ref = r.get("reference") or {}
            if ref.get("namespace") == NAMESPACE and ref.get("name") == BROKER:
                return len(r.get("egresses") or []), int(obj.get("generation", 0)), len(data)
        return 0, int(obj.get("generation", 0)), len(data)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                seen = self._egresses()
            except (OSError, orjson.JSONDecodeError):
                seen = None  # replaced while read: the next poll sees the new file
            if seen is not None and self._want >= 0 and self.seen_at is None and seen[0] >= self._want:
                self.seen_at = time.monotonic() - self._start
                self.generation, self.size = seen[1], seen[2]
            time.sleep(0.01)

    def wait(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while self.seen_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.seen_at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Nerve:
    proc: subprocess.Popen[bytes]
    ps: psutil.Process
    api: Api
    contract: Path
    state: Path

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss_mib(self) -> float:
        return self.ps.memory_info().rss / 2**20


def start_nerve(state: Path, extra: list[str]) -> Nerve:
    api_port = free_port()
    log = (state / "nerve.log").open("wb")
    proc = subprocess.Popen([NERVE, "up", "--backend", "memory", "--ingress-port", str(free_port()),
                             "--api-port", str(api_port), "--state-dir", str(state), *extra],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nerve up did not start; see {state / 'nerve.log'}") from None
            time.sleep(0.2)
    token = (state / "token").read_text().strip()
    return Nerve(proc, psutil.Process(proc.pid), Api(url, token), state / "contract.json", state)


def stop_nerve(nerve: Nerve) -> None:
    nerve.proc.send_signal(signal.SIGINT)
    try:
        nerve.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        nerve.proc.kill()
        nerve.proc.wait()


def profiler(nerve: Nerve, out: str | None) -> subprocess.Popen[bytes] | None:
    if not out:
        return None
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy (make install puts it in .venv)")
    fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(out).suffix, "flamegraph")
    return subprocess.Popen([spy, "record", "--pid", str(nerve.proc.pid), "--rate", "200", "--format", fmt,
                             "--output", out, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


CLI_CPU = [0.0]
"""CPU seconds of the last `nerve apply -f` (its YAML parse and request), from this process's children's rusage."""


def apply_file(nerve: Nerve, path: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run([NERVE, "apply", "-f", str(path), "--server", nerve.api.url, "--token", nerve.api.token],
                          capture_output=True)
    took = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CLI_CPU[0] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise SystemExit(f"nerve apply failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return took


def apply_api(nerve: Nerve, docs: list[dict[str, Any]], batch: int) -> float:
    t0 = time.monotonic()
    for start in range(0, len(docs), batch):
        status, body, _ = nerve.api.call("POST", "/api/v1/apply", {"items": docs[start:start + batch]})
        if status != 200:
            raise SystemExit(f"apply failed: {status} {body[:2000]!r}")
    return time.monotonic() - t0


def wait_ready(nerve: Nerve, want: int, t0: float, timeout: float) -> float | None:
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if nerve.api.ready_triggers() >= want:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def fetch_contract(nerve: Nerve, gzip_ok: bool) -> tuple[int, float, int]:
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {"Accept-Encoding": "identity"}
    t0 = time.monotonic()
    status, body, got = nerve.api.call("GET", "/api/v1/contract", headers=headers)
    took = time.monotonic() - t0
    if status != 200:
        raise SystemExit(f"GET /api/v1/contract: {status}")
    wire = len(body)
    if {k.lower(): v for k, v in got.items()}.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    contract = orjson.loads(body)
    egresses = sum(len(r.get("egresses") or []) for r in contract["resources"])
    return wire, took, egresses


def fmt(seconds: float | None) -> str:
    return "never (timeout)" if seconds is None else f"{seconds * 1000:,.0f} ms"


def run_one(n: int, mode: str, args: argparse.Namespace) -> None:
    state = Path(tempfile.mkdtemp(prefix="nerve-bench-contract-"))
    sink = f"http://127.0.0.1:{free_port()}"
    nerve = start_nerve(state, args.nerve_arg)
    watch = ContractWatch(nerve.contract)
    spy: subprocess.Popen[bytes] | None = None
    try:
        docs = [broker(), *(trigger(i, sink) for i in range(n))]
        manifest = state / "triggers.yaml"
        yaml_file(manifest, docs)
        time.sleep(0.5)  # the first reconcile of an empty store has published generation 1
        rss0, cpu0 = nerve.rss_mib(), nerve.cpu()
        out = Path(args.profile) if args.profile else None
        spy = profiler(nerve, out and str(out.with_stem(f"{out.stem}-{mode}-{n}")))
        t0 = time.monotonic()
        watch.expect(n)
        took = apply_file(nerve, manifest) if mode == "file" else apply_api(nerve, docs, args.batch)
        ready = wait_ready(nerve, n, t0, args.timeout)
        in_contract = watch.wait(args.timeout)
        cpu1 = nerve.cpu()
        rss1 = nerve.rss_mib()
        plain = fetch_contract(nerve, gzip_ok=False)
        zipped = fetch_contract(nerve, gzip_ok=True)
        # One more Trigger on the N-Trigger Broker.
        cpu2 = nerve.cpu()
        watch.expect(n + 1)
        t1 = time.monotonic()
        status, body, _ = nerve.api.call("POST", "/api/v1/apply", {"items": [trigger(n, sink)]})
        if status != 200:
            raise SystemExit(f"apply of one more Trigger failed: {status} {body[:500]!r}")
        one_took = time.monotonic() - t1
        one_contract = watch.wait(args.timeout)
        one_cpu = nerve.cpu() - cpu2
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=120)
            spy = None
        load = os.getloadavg()[0]
        via = "nerve apply -f (one file)" if mode == "file" else f"POST /api/v1/apply, batches of {args.batch}"
        print(f"\n== {n:,} Triggers on one Broker, {via}; load average {load:.1f} on {os.cpu_count()} cores")
        cli = f" (the nerve apply command: {CLI_CPU[0]:.2f} s CPU)" if mode == "file" else ""
        print(f"apply returns:        {fmt(took)}{cli}")
        print(f"all Ready (API):      {fmt(ready)}")
        print(f"contract holds {n:,}: {fmt(in_contract)} (generation {watch.generation})")
        print(f"contract size:        {watch.size:,} bytes (file)")
        print(f"GET /api/v1/contract: {plain[0]:,} bytes in {fmt(plain[1])} plain, {zipped[0]:,} bytes in "
              f"{fmt(zipped[1])} with Accept-Encoding: gzip ({zipped[2]:,} egresses)")
        print(f"nerve up CPU:         {cpu1 - cpu0:.2f} s (apply to Ready); RSS {rss0:.0f} -> {rss1:.0f} MiB")
        print(f"one more Trigger:     apply returns {fmt(one_took)}, contract holds {n + 1:,} {fmt(one_contract)}, "
              f"CPU {one_cpu:.2f} s")
    finally:
        if spy is not None:
            spy.kill()
        watch.stop()
        stop_nerve(nerve)
        if args.keep:
            print(f"state dir kept: {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


T = TypeVar("T")


@dataclass
class Phase:
    name: str
    cpu: float
    wall: float
    writes: int
    builds: int
    statements: int = 0


class CountingConnection:
    """The store's sqlite3 connection with its calls counted: `execute` is one statement, `executemany` one
    call however many rows it carries (what Python pays per statement is the call; SQLite's own work per row
    is inside it). A method call in front of each statement: well under a microsecond."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.statements = 0

    def execute(self, *args: Any) -> Any:
        self.statements += 1
        return self._db.execute(*args)

    def executemany(self, *args: Any) -> Any:
        self.statements += 1
        return self._db.executemany(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def measured(name: str, step: Callable[[], Awaitable[T]], revision: Callable[[], Awaitable[int]],
                   builds: Callable[[], int], profile: Path | None,
                   counted: CountingConnection | None = None) -> tuple[Phase, T]:
    """CPU (this process), wall time, store writes, SQLite statements and Trigger builds of one step;
    cProfile'd with `profile`."""
    rev0, builds0 = await revision(), builds()
    statements0 = counted.statements if counted is not None else 0
    profiler_ = cProfile.Profile() if profile is not None else None
    cpu0, wall0 = time.process_time(), time.monotonic()
    if profiler_ is not None:
        profiler_.enable()
    result = await step()
    if profiler_ is not None:
        profiler_.disable()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if profiler_ is not None and profile is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler_, stream=out)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(60)
        path = profile.with_stem(f"{profile.stem}-{name.replace(' ', '-')}")
        path.write_text(out.getvalue())
    statements = counted.statements - statements0 if counted is not None else 0
    return Phase(name, cpu, wall, await revision() - rev0, builds() - builds0, statements), result


async def control_only(n: int, args: argparse.Namespace) -> None:
    # Imported here: the other modes run Nerve as its own process and need none of it in this one.
    from channels.registry import BackendPool
    from control.api.admission import AdmissionSettings
    from control.reconcilers.controller import Reconciler
    from control.service import ControlService
    from control.settings import ControlSettings
    from control.store.sqlite import SqliteStore
    from core.contract import Contract, write_atomically

    state = Path(tempfile.mkdtemp(prefix="nerve-bench-control-"))
    settings = ControlSettings(state_dir=state, default_backend="memory")
    store = SqliteStore(settings.db_path)
    counted = CountingConnection(store._db)
    store._db = counted  # type: ignore[assignment]
    pool = BackendPool()
    published: list[Contract] = []

    async def publish(contract: Contract) -> None:
        write_atomically(settings.contract_path, contract)  # what `python -m control` does with each generation
        published.append(contract)

    reconciler = Reconciler(store, pool, settings, publish)
    service = ControlService(store, reconciler, AdmissionSettings("MTChannelBasedBroker",
                                                                  default_channel_kind=settings.channel_kind))
    sink = "http://127.0.0.1:9"  # nothing is sent: no dispatcher runs

    async def revision() -> int:
        return int((await store.list("Broker")).resource_version)

    def builds() -> int:
        return reconciler.triggers.builds

    def body(docs: list[dict[str, Any]]) -> bytes:
        return orjson.dumps({"items": docs})

    profile = Path(args.profile) if args.profile else None
    try:
        await reconciler.reconcile()  # the empty store's first pass, as start() makes it
        request = body([broker(), *(trigger(i, sink) for i in range(n))])
        phases: list[Phase] = []

        async def apply(raw: bytes) -> Any:
            return await service.apply(orjson.loads(raw)["items"])  # parsed as the control API parses it

        phase, _ = await measured("apply", lambda: apply(request), revision, builds, profile, counted)
        phases.append(phase)
        egresses = sum(len(r.egresses) for r in published[-1].resources)
        listed = (await store.list("Trigger", NAMESPACE)).items
        ready = sum(any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (t.get("status") or {}).get("conditions") or []) for t in listed)
        phase, _ = await measured("resync", reconciler.reconcile, revision, builds, profile, counted)
        phases.append(phase)
        one = body([trigger(n, sink)])
        phase, _ = await measured("one more", lambda: apply(one), revision, builds, profile, counted)
        phases.append(phase)
        load = os.getloadavg()
        print(f"\n== control alone: {n:,} Triggers on one Broker, one apply (in process, SQLite, contract file); "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
        print(f"after the apply: {ready:,} Triggers Ready, {egresses:,} egresses in generation "
              f"{published[-1].generation}, contract file {settings.contract_path.stat().st_size:,} bytes")
        for p in phases:
            print(f"{p.name + ':':<10} CPU {p.cpu:6.2f} s  wall {p.wall:6.2f} s  store writes {p.writes:>6,}  "
                  f"statements {p.statements:>6,}  Trigger builds {p.builds:>6,}  "
                  f"({p.cpu / max(n, 1) * 1e6:,.0f} µs CPU per Trigger)")
        if profile is not None:
            print(f"cProfile: {profile.with_stem(profile.stem + '-<phase>')}")
    finally:
        await reconciler.stop()
        await pool.stop()
        await store.close()
        if args.keep:
            print(f"state dir kept: {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", default="1000,10000", help="comma-separated Trigger counts")
    parser.add_argument("--modes", default="file,api", help="file (one nerve apply -f), api (batches), or both")
    parser.add_argument("--batch", type=int, default=1000, help="Triggers per POST /api/v1/apply in api mode")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting for Ready after this long")
    parser.add_argument("--profile", help="py-spy record of nerve up per run: .svg flame graph, .txt collapsed "
                        "stacks, .json speedscope")
    parser.add_argument("--keep", action="store_true", help="keep each state dir (nerve.log)")
    parser.add_argument("--nerve-arg", action="append", default=[], help="a flag for `nerve up`")
    parser.add_argument("--control-only", action="store_true",
                        help="control's own code in this process (SQLite, contract file, no dispatcher): CPU of "
                        "the apply, a resync with nothing changed and one more Trigger; --profile then takes .txt "
                        "(cProfile per phase)")
    args = parser.parse_args()
    if args.control_only:
        for n in (int(x) for x in args.triggers.split(",")):
            asyncio.run(control_only(n, args))
        return
    for n in (int(x) for x in args.triggers.split(",")):
        for mode in args.modes.split(","):
            run_one(n, mode, args)


if __name__ == "__main__":
    main()
