"""The cost of transport encryption: events over http vs https, into the ingress and out to a subscriber.

One `nerve up --transport-encryption permissive` process (memory backend) serves both listeners; the load
generator and the subscribers share this process. Four cases, each with N events and C requests in flight:

    ingress http  -> subscriber http       (today's path)
    ingress https -> subscriber http       (the ingress's TLS cost)
    ingress http  -> subscriber https      (the dispatcher's TLS cost: CACerts-verified deliveries)
    ingress https -> subscriber https

Each line prints accepted events/s (202s), ingress p50/p99 (request -> 202), delivered events/s, and the
CPU (percent of one core) of the nerve process. Connections are kept alive on both hops, so the numbers
are the steady state (a handshake per connection, not per event).

    .venv/bin/python bench/bench_tls.py --events 5000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.tls import issue, new_ca

NERVE = str(Path(sys.executable).with_name("nerve"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _server import free_port  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()
        self.last = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        self.last = time.perf_counter()
        if self.count >= self.target:
            self.done.set()
        return web.Response(status=202)

    def reset(self, target: int) -> None:
        self.count, self.target, self.done = 0, target, asyncio.Event()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _api(api: int, token: str, items: list[dict[str, object]]) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{api}/api/v1/apply", data=json.dumps({"items": items}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


def _ready(api: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/readyz", timeout=1):
            return True
    except OSError:
        return False


async def run_case(session: aiohttp.ClientSession, url: str, into: str, sink: Sink, events: int, concurrency: int,
                   nerve_ca: ssl.SSLContext, nerve: psutil.Process) -> str:
    sink.reset(events)
    latencies: list[float] = []
    accepted = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(events):
        queue.put_nowait(i)

    async def worker() -> None:
        nonlocal accepted
        while not queue.empty():
            i = queue.get_nowait()
            headers = {"Ce-Id": f"{into}-{i}", "Ce-Specversion": "1.0", "Ce-Type": "bench",
                       "Ce-Source": "/bench", "Content-Type": "application/json"}
            started = time.perf_counter()
            async with session.post(url, data=b'{"n":1}', headers=headers,
                                    ssl=nerve_ca if into == "https" else True) as r:
                await r.read()
                if r.status == 202:
                    accepted += 1
            latencies.append(time.perf_counter() - started)

    nerve.cpu_percent()
    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sent_s = time.perf_counter() - begin
    await asyncio.wait_for(sink.done.wait(), 120)
    cpu = nerve.cpu_percent()
    return (f"accepted {accepted / sent_s:7.0f} ev/s  ingress p50 {_pct(latencies, 0.5) * 1000:5.1f} ms "
            f"p99 {_pct(latencies, 0.99) * 1000:5.1f} ms  delivered {sink.count / (sink.last - begin):7.0f} ev/s  "
            f"nerve CPU {cpu:4.0f}%")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    ca = new_ca("bench subscriber CA")
    served = issue(ca, ["127.0.0.1"])
    tmp = Path(tempfile.mkdtemp(prefix="nerve-bench-tls-"))
    (tmp / "s.crt").write_bytes(served.cert_pem)
    (tmp / "s.key").write_bytes(served.key_pem)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp / "s.crt", tmp / "s.key")

    sinks = {"http": Sink(), "https": Sink()}
    runners = []
    ports = {}
    for scheme, sink in sinks.items():
        app = web.Application()
        app.router.add_post("/", sink.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ports[scheme] = free_port()
        await web.TCPSite(runner, "127.0.0.1", ports[scheme], ssl_context=server_ctx if scheme == "https" else None
                          ).start()
        runners.append(runner)

    http_port, https_port, api = free_port(), free_port(), free_port()
    state = tmp / "state"
    proc = await asyncio.create_subprocess_exec(
        NERVE, "up", "--state-dir", str(state), "--ingress-port", str(http_port), "--https-port", str(https_port),
        "--api-port", str(api), "--transport-encryption", "permissive",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(300):
            if await asyncio.to_thread(_ready, api):
                break
            await asyncio.sleep(0.1)
        token = (state / "token").read_text().strip()
        nerve_ca = ssl.create_default_context(cafile=str(state / "tls" / "ca.crt"))
        items: list[dict[str, object]] = []
        for scheme in sinks:
            subscriber: dict[str, object] = {"uri": f"{scheme}://127.0.0.1:{ports[scheme]}/"}
            if scheme == "https":
                subscriber["CACerts"] = ca.cert_pem.decode()
            items += [{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                       "metadata": {"name": f"to-{scheme}", "namespace": "bench"}},
                      {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                       "metadata": {"name": f"t-{scheme}", "namespace": "bench"},
                       "spec": {"broker": f"to-{scheme}", "subscriber": subscriber}}]
        await asyncio.to_thread(_api, api, token, items)
        await asyncio.sleep(2.0)
        nerve = psutil.Process(proc.pid)
        load = " ".join(f"{x:.2f}" for x in psutil.getloadavg())
        print(f"events={args.events} concurrency={args.concurrency} load(1,5,15)={load}")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as session:
            for into in ("http", "https"):
                for out in ("http", "https"):
                    base = f"http://127.0.0.1:{http_port}" if into == "http" else f"https://127.0.0.1:{https_port}"
                    line = await run_case(session, f"{base}/bench/to-{out}", into, sinks[out], args.events,
                                          args.concurrency, nerve_ca, nerve)
                    print(f"ingress {into:5} -> subscriber {out:5}: {line}", flush=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        for runner in runners:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
