"""PingSource benchmark: 1,000 PingSources firing every second into a real HTTP sink, for N seconds.

`nerve up` runs as its own process (measured with psutil); the sink is an aiohttp server in this process
that records each event's source, `time` (the tick's scheduled second, sources/ping.py) and arrival. Every
source has schedule `* * * * * *`. Once ticks arrive on time after the apply (ticks that fell due while a
thousand sources were being applied are sent first), the measured window is --seconds long; for each
source every whole second in the window is one expected tick. It prints:

- ticks/s received in the window (expected: --sources);
- lateness, arrival minus the scheduled second, p50 / p99 / max;
- missed ticks (expected, never arrived) and doubled ticks (one (source, second) arriving twice);
- CPU % (of one core) and RSS of the `nerve up` process over the window.

    .venv/bin/python bench/bench_ping.py                      # 1,000 sources, 30 s
    .venv/bin/python bench/bench_ping.py --sources 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

NERVE = str(Path(sys.executable).with_name("nerve"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float, float]] = []  # (source, scheduled second, arrival)
        self.on_time: Counter[float] = Counter()  # scheduled second -> ticks that arrived within 1 s

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        arrived = time.time()
        scheduled = datetime.fromisoformat(request.headers["ce-time"].replace("Z", "+00:00")).timestamp()
        self.seen.append((request.headers["ce-source"], scheduled, arrived))
        if arrived - scheduled < 1.0:
            self.on_time[scheduled] += 1
        return web.Response(status=202)

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post("/", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        return runner, f"http://127.0.0.1:{port}/"


def start_nerve(api_port: int, state: Path, log: Any, extra: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([NERVE, "up", "--ingress-port", str(free_port()), "--api-port", str(api_port),
                             "--state-dir", str(state), *extra], stdout=log, stderr=subprocess.STDOUT)


def pingsource(i: int, sink: str) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": f"ping-{i:04d}", "namespace": "bench"},
            "spec": {"schedule": "* * * * * *", "data": "tick", "contentType": "text/plain", "sink": {"uri": sink}}}


async def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, state: Path) -> bool:
    sink = Sink()
    runner, sink_url = await sink.start()
    api_port = free_port()
    log = (state / "nerve.log").open("wb")
    proc = start_nerve(api_port, state, log, args.nerve_arg)
    ps = psutil.Process(proc.pid)
    api = f"http://127.0.0.1:{api_port}"
    try:
        await wait_http(f"{api}/healthz")
        token = (state / "token").read_text().strip()
        applied = time.monotonic()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            for start in range(0, args.sources, 100):
                items = [pingsource(i, sink_url) for i in range(start, min(start + 100, args.sources))]
                async with session.post(f"{api}/api/v1/apply", json={"items": items}) as response:
                    if response.status != 200:
                        raise SystemExit(f"apply failed: {response.status} {await response.text()}")
        print(f"applied {args.sources} PingSources in {time.monotonic() - applied:.1f} s", flush=True)
        # The ticks that fell due while the sources were being applied are sent first: measure once
        # every source's tick of a second arrives within that second again.
        settled = time.monotonic()
        while sink.on_time[float(int(time.time()) - 2)] < args.sources * 0.99:
            if time.monotonic() - settled > args.warmup:
                print(f"not on time within {args.warmup:.0f} s after the apply; measuring anyway")
                break
            await asyncio.sleep(0.2)
        else:
            print(f"on time {time.monotonic() - settled:.1f} s after the apply", flush=True)
        first = float(int(time.time()) + 1)
        last = first + args.seconds  # ticks first .. last-1 are measured
        await asyncio.sleep(first - time.time())
        me = psutil.Process()
        cpu0, mine0, wall0 = ps.cpu_times(), me.cpu_times(), time.monotonic()
        rss_peak = 0
        while time.time() < last:
            rss_peak = max(rss_peak, ps.memory_info().rss)
            await asyncio.sleep(0.5)
        cpu1, mine1, wall1 = ps.cpu_times(), me.cpu_times(), time.monotonic()
        await asyncio.sleep(args.grace)  # ticks of the last second still on their way
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        await runner.cleanup()

    window = [(src, at, arrived) for src, at, arrived in sink.seen if first <= at < last]
    counts = Counter((src, at) for src, at, _ in window)
    expected = args.sources * args.seconds
    doubled = sum(n - 1 for n in counts.values() if n > 1)
    missed = expected - len(counts)
    lateness = [(arrived - at) * 1000 for _, at, arrived in window]
    used = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (wall1 - wall0) * 100
    print(f"{args.sources} PingSources x {args.seconds} s, schedule '* * * * * *' (every second); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"ticks/s received: {len(window) / args.seconds:.0f} (expected {args.sources})")
    print(f"lateness (arrival - scheduled second): p50 {percentile(lateness, 0.5):.1f} ms, "
          f"p99 {percentile(lateness, 0.99):.1f} ms, max {max(lateness, default=float('nan')):.1f} ms, "
          f"mean {statistics.fmean(lateness) if lateness else float('nan'):.1f} ms")
    print(f"missed ticks (not arrived by the end): {missed} of {expected}, doubled ticks: {doubled}")
    sink_cpu = (mine1.user + mine1.system - mine0.user - mine0.system) / (wall1 - wall0) * 100
    print(f"nerve up: CPU {used:.0f}% of one core, RSS peak {rss_peak / 2**20:.0f} MiB "
          f"(the sink, this process: CPU {sink_cpu:.0f}%)")
    return missed == 0 and doubled == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="at most this long after the apply for the ticks to arrive on time before measuring")
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("--keep", action="store_true", help="keep the state dir (nerve.log) afterwards")
    parser.add_argument("--nerve-arg", action="append", default=[],
                        help="a flag for `nerve up`, e.g. --nerve-arg=--max-connections-per-host=200")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="nerve-bench-ping-")
    try:
        ok = asyncio.run(run(args, Path(tmp)))
    finally:
        if args.keep:
            print(f"state dir and nerve.log kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
