"""The compose stack, for real: images built from this repo (and the kafka/nats stand-ins), run by
podman-compose, used from the host through the published ports as the README tells a user to.

`make compose-test` builds the images first (scripts/containers.sh), then runs this module:
- the getting-started walkthrough (`nerve apply` and the README's curls) and what the displays print;
- /metrics of every Nerve service, and each image's healthcheck;
- 2,000 events through the published ingress port, the dispatcher container restarted mid-stream
  (`podman restart`: SIGTERM, then a new start): every 202'd event delivered, duplicates printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.support.launchers import free_port

REPO = Path(__file__).resolve().parents[2]
NERVE = str(Path(sys.executable).with_name("nerve"))
PODMAN_COMPOSE = os.environ.get("NERVE_PODMAN_COMPOSE") or str(
    Path(os.environ.get("NERVE_CACHE") or Path.home() / ".cache" / "nerve") / "containers" / "tools" / "bin"
    / "podman-compose")
FILES = ["docker-compose.yml", "docker-compose.standins.yml", "tests/compose/docker-compose.test.yml"]
WALKTHROUGH = [REPO / "examples" / "getting-started" / f for f in
               ("00-namespace.yaml", "01-broker.yaml", "03-triggers.yaml")]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    ingress: str
    api: str
    dispatcher: str
    sources: str

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        files = [a for f in FILES for a in ("-f", str(REPO / f))]
        done = subprocess.run([PODMAN_COMPOSE, "-p", self.project, *files, *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"podman-compose {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def podman(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)

    def logs(self, service: str) -> str:
        done = self.podman("logs", self.container(service))
        return done.stdout + done.stderr

    def nerve(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([NERVE, *args], env=self.env, capture_output=True, text=True, timeout=60)

    def contract_generation(self) -> int:
        done = self.podman("exec", self.container("nerve-control"), "python3", "-c",
                           "import json; print(json.load(open('/var/lib/nerve/state/contract.json'))['generation'])")
        return int(done.stdout.strip() or 0)

    def broker_ready(self) -> bool:
        got = self.nerve("get", "broker", "default", "-n", "event-example", "-o", "json")
        conditions = json.loads(got.stdout or "{}").get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def wait_data_plane(self, timeout: float = 90) -> None:
        """Until the ingress, dispatcher and sources all run the contract generation control wrote."""
        deadline = time.monotonic() + timeout
        while True:
            want = self.contract_generation()
            seen = [readyz(url).get("generation", -1) for url in (self.ingress, self.dispatcher, self.sources)]
            if want and all(g == want for g in seen):
                return
            assert time.monotonic() < deadline, f"data plane at generations {seen}, control wrote {want}"
            time.sleep(0.5)


def readyz(base: str) -> dict[str, int]:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
            body: dict[str, int] = json.loads(r.read() or b"{}")
            return body
    except (OSError, ValueError):
        return {}


def wait_for(check: object, what: str, timeout: float = 180, seen: object = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s" + (f": {seen()}" if seen else "")  # type: ignore[operator]
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    ports = {name: free_port() for name in ("ingress", "api", "dispatcher", "sources")}
    env = {**os.environ, "NERVE_TOKEN": secrets.token_urlsafe(24),
           "NERVE_INGRESS_HOST_PORT": str(ports["ingress"]), "NERVE_API_HOST_PORT": str(ports["api"]),
           "NERVE_DISPATCHER_HOST_PORT": str(ports["dispatcher"]), "NERVE_SOURCES_HOST_PORT": str(ports["sources"]),
           "NERVE_SERVER": f"http://127.0.0.1:{ports['api']}"}
    s = Stack(f"nervetest{os.getpid()}", env, *(f"http://127.0.0.1:{ports[n]}" for n in
                                                ("ingress", "api", "dispatcher", "sources")))
    started = time.monotonic()
    try:
        s.compose("up", "-d", "--no-build")
        wait_for(lambda: readyz(s.api) != {} or _ready(s.api), "control ready")
        print(f"\n[compose] stack up and control ready in {time.monotonic() - started:.1f}s")
        yield s
    finally:
        for service in ("nerve-control", "nerve-ingress", "nerve-dispatcher", "kafka"):
            print(f"\n----- {service} (last lines) -----\n" + "\n".join(s.logs(service).splitlines()[-15:]))
        s.compose("down", "-v", "-t", "15")


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def curl(url: str, event_id: str, event_type: str, source: str, msg: str) -> str:
    """One of the README's curls, as a user types it; the status line it got."""
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url, "-X", "POST", "-H", f"Ce-Id: {event_id}",
         "-H", "Ce-Specversion: 1.0", "-H", f"Ce-Type: {event_type}", "-H", f"Ce-Source: {source}",
         "-H", "Content-Type: application/json", "-d", json.dumps({"msg": msg})],
        capture_output=True, text=True, timeout=30)
    return done.stdout


def displayed_ids(text: str) -> list[str]:
    return re.findall(r"^\s+id: (\S+)\s*$", text, flags=re.M)


def test_the_walkthrough_through_the_published_ports(stack: Stack) -> None:
    applied = stack.nerve("apply", *(a for f in WALKTHROUGH for a in ("-f", str(f))))
    assert applied.returncode == 0, applied.stderr
    assert "broker.eventing.knative.dev/default created" in applied.stdout, applied.stdout

    wait_for(stack.broker_ready, "Broker event-example/default Ready (on Kafka)")
    stack.wait_data_plane()
    # As a user who reads `docker compose logs` first: the Triggers have no retries, so an event delivered
    # before its display listens is dropped (logged by the dispatcher), in Knative too.
    for display in ("hello-display", "goodbye-display"):
        wait_for(lambda d=display: "listening on" in stack.logs(d), f"{display} listening", timeout=60)
    url = f"{stack.ingress}/event-example/default"
    assert curl(url, "say-hello", "greeting", "not-sendoff", "Hello Knative!") == "202"
    assert curl(url, "say-goodbye", "not-greeting", "sendoff", "Goodbye Knative!") == "202"
    assert curl(url, "say-hello-goodbye", "greeting", "sendoff", "Hello Knative! Goodbye Knative!") == "202"
    wait_for(lambda: set(displayed_ids(stack.logs("hello-display"))) >= {"say-hello", "say-hello-goodbye"},
             "hello-display prints both greetings", timeout=60,
             seen=lambda: stack.logs("hello-display") + stack.logs("nerve-dispatcher")[-4000:])
    wait_for(lambda: set(displayed_ids(stack.logs("goodbye-display"))) >= {"say-goodbye", "say-hello-goodbye"},
             "goodbye-display prints both sendoffs", timeout=60,
             seen=lambda: stack.logs("goodbye-display") + stack.logs("nerve-dispatcher")[-4000:])
    hello = stack.logs("hello-display")
    assert set(displayed_ids(hello)) == {"say-hello", "say-hello-goodbye"}, hello
    assert "knativearrivaltime" in hello and '"msg": "Hello Knative!"' in hello, hello
    assert set(displayed_ids(stack.logs("goodbye-display"))) == {"say-goodbye", "say-hello-goodbye"}


def test_every_service_serves_metrics_and_passes_its_healthcheck(stack: Stack) -> None:
    expected = {stack.api: "nerve_", stack.ingress: "nerve_ingress_", stack.dispatcher: "nerve_",
                stack.sources: "nerve_"}
    for base, prefix in expected.items():
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert r.status == 200 and prefix in text, f"{base}/metrics"
    for service in ("nerve-control", "nerve-ingress", "nerve-dispatcher", "nerve-sources"):
        # podman runs HEALTHCHECKs from systemd timers, which this machine has not: run it by hand.
        done = stack.podman("healthcheck", "run", stack.container(service))
        assert done.returncode == 0, f"{service} healthcheck: {done.stdout}{done.stderr}"


def test_2000_events_across_a_dispatcher_restart(stack: Stack) -> None:
    sink = subprocess.run([NERVE, "apply", "-f", "-"], env=stack.env, capture_output=True, text=True, timeout=60,
                          input=json.dumps({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                                            "metadata": {"name": "load", "namespace": "event-example"},
                                            "spec": {"broker": "default", "filter": {"attributes": {"type": "load"}},
                                                     "subscriber": {"uri": "http://sink:8080/"}}}))
    assert sink.returncode == 0, sink.stderr
    wait_for(stack.broker_ready, "Broker event-example/default Ready (on Kafka)")
    stack.wait_data_plane()
    url = f"{stack.ingress}/event-example/default"
    total, outcomes = 2000, dict[str, str]()

    async def produce() -> None:
        queue = iter(range(total))
        restarted = False
        restarts: list[asyncio.Future[subprocess.CompletedProcess[str]]] = []

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal restarted
            for n in queue:
                headers = {"ce-specversion": "1.0", "ce-id": f"load-{n}", "ce-source": "/compose-test",
                           "ce-type": "load", "Content-Type": "application/json"}
                try:
                    async with session.post(url, data=b'{"n": %d}' % n, headers=headers) as r:
                        outcomes[f"load-{n}"] = str(r.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    outcomes[f"load-{n}"] = type(exc).__name__
                if len(outcomes) >= total // 3 and not restarted:
                    restarted = True
                    print(f"\n[compose] restarting the dispatcher after {len(outcomes)} events")
                    # SIGTERM (drain), then a fresh start; the producers keep sending meanwhile.
                    restarts.append(asyncio.get_running_loop().run_in_executor(
                        None, lambda: stack.podman("restart", "-t", "15", stack.container("nerve-dispatcher"))))

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            await asyncio.gather(*(worker(session) for _ in range(16)))
        [restart] = await asyncio.gather(*restarts)
        assert restart.returncode == 0, restart.stderr

    dispatcher = stack.container("nerve-dispatcher")
    before = stack.podman("inspect", "-f", "{{.State.StartedAt}}", dispatcher).stdout
    started = time.monotonic()
    asyncio.run(produce())
    sent_in = time.monotonic() - started
    assert stack.podman("inspect", "-f", "{{.State.StartedAt}}", dispatcher).stdout != before, "no restart"
    accepted = {i for i, o in outcomes.items() if o == "202"}
    assert accepted == set(outcomes), {i: o for i, o in outcomes.items() if o != "202"}
    deadline = time.monotonic() + 240
    while True:
        ids = [i for i in displayed_ids(stack.logs("sink")) if i.startswith("load-")]
        missing = accepted - set(ids)
        if not missing:
            break
        assert time.monotonic() < deadline, f"{len(missing)} of {len(accepted)} accepted events never delivered, " \
                                            f"e.g. {sorted(missing)[:5]}"
        time.sleep(2)
    print(f"\n[compose] {len(accepted)} events accepted in {sent_in:.1f}s, all delivered in "
          f"{time.monotonic() - started:.1f}s across a dispatcher restart; duplicates={len(ids) - len(set(ids))}")
