"""Knative's getting-started walkthrough, run as a user types it: whole processes, the CLI and curl.

The only liberty taken: ports are free ones picked by the test (passed with --ingress-port,
--api-port, NERVE_SERVER and the displays' --port), so the test cannot collide with a `make up`
already running on the machine; the example files are copied with their two display URLs adjusted.
As in the README, `nerve up` and the CLI run in one directory: the CLI finds the API token `nerve up`
wrote to .nerve/token there, with no flag.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.launchers import free_port

REPO = Path(__file__).resolve().parents[2]
NERVE = str(Path(sys.executable).with_name("nerve"))
pytestmark = pytest.mark.e2e


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> Path:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            self.procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir))
        return log

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    yield p
    p.stop()


def run(*args: str, env: dict[str, str], stdin: str | None = None, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, input=stdin, cwd=cwd)


def test_getting_started_walkthrough(tmp_path: Path, procs: Processes) -> None:
    ingress, api, hello, goodbye = free_port(), free_port(), free_port(), free_port()
    examples = tmp_path / "getting-started"
    shutil.copytree(REPO / "examples" / "getting-started", examples)
    displays = examples / "02-displays.yaml"
    displays.write_text(displays.read_text().replace("127.0.0.1:9001", f"127.0.0.1:{hello}")
                        .replace("127.0.0.1:9002", f"127.0.0.1:{goodbye}"))
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}

    up_log = procs.start("nerve-up", NERVE, "up", "--ingress-port", str(ingress), "--api-port", str(api))
    hello_log = procs.start("hello", NERVE, "display", "--port", str(hello))
    goodbye_log = procs.start("goodbye", NERVE, "display", "--port", str(goodbye))
    try:
        wait_http(f"http://127.0.0.1:{api}/healthz")
        wait_port(hello)
        wait_port(goodbye)
    except OSError:
        pytest.fail(f"processes did not come up:\n{up_log.read_text()}")

    applied = run(NERVE, "apply", "-f", str(examples), env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert "broker.eventing.knative.dev/default created" in applied.stdout
    assert "trigger.eventing.knative.dev/hello-display created" in applied.stdout

    brokers = run(NERVE, "get", "brokers", "-n", "event-example", env=env, cwd=tmp_path)
    assert brokers.returncode == 0, brokers.stderr
    header, row = brokers.stdout.strip().splitlines()
    assert header.split() == ["NAME", "URL", "AGE", "READY", "REASON"]
    url = f"http://127.0.0.1:{ingress}/event-example/default"
    assert row.split()[0:2] == ["default", url]
    assert row.split()[3] == "True"

    triggers = run(NERVE, "get", "triggers", "-n", "event-example", env=env, cwd=tmp_path)
    lines = triggers.stdout.strip().splitlines()
    assert lines[0].split() == ["NAME", "BROKER", "SUBSCRIBER_URI", "AGE", "READY", "REASON"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["hello-display"][1:3] == ["default", f"http://127.0.0.1:{hello}/"]
    assert rows["goodbye-display"][4] == "True"

    for ce_id, ce_type, ce_source, msg in [
        ("say-hello", "greeting", "not-sendoff", "Hello Knative!"),
        ("say-goodbye", "not-greeting", "sendoff", "Goodbye Knative!"),
        ("say-hello-goodbye", "greeting", "sendoff", "Hello Knative! Goodbye Knative!"),
    ]:
        curl = run("curl", "-v", url, "-X", "POST", "-H", f"Ce-Id: {ce_id}", "-H", "Ce-Specversion: 1.0",
                   "-H", f"Ce-Type: {ce_type}", "-H", f"Ce-Source: {ce_source}",
                   "-H", "Content-Type: application/json", "-d", f'{{"msg":"{msg}"}}', env=env)
        assert "< HTTP/1.1 202 Accepted" in curl.stderr, curl.stderr

    def events(log: Path, count: int) -> list[str]:
        deadline = time.monotonic() + 20
        while True:
            blocks = log.read_text().split("☁️  cloudevents.Event\n")[1:]
            if len(blocks) >= count or time.monotonic() > deadline:
                return blocks
            time.sleep(0.1)

    hello_events = events(hello_log, 2)
    goodbye_events = events(goodbye_log, 2)
    time.sleep(0.5)  # anything extra would have arrived by now
    assert len(events(hello_log, 2)) == 2
    assert len(events(goodbye_log, 2)) == 2
    assert [re.search(r"  id: (\S+)", b).group(1) for b in hello_events] == ["say-hello", "say-hello-goodbye"]  # type: ignore[union-attr]
    assert [re.search(r"  id: (\S+)", b).group(1) for b in goodbye_events] == ["say-goodbye", "say-hello-goodbye"]  # type: ignore[union-attr]
    first = hello_events[0].splitlines()
    assert first[:6] == ["Context Attributes,", "  specversion: 1.0", "  type: greeting", "  source: not-sendoff",
                         "  id: say-hello", "  datacontenttype: application/json"]
    assert first[6] == "Extensions,"
    assert re.fullmatch(r"  knativearrivaltime: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", first[7])
    assert first[8:] == ["Data,", "  {", '    "msg": "Hello Knative!"', "  }"]


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path: Path, procs: Processes) -> None:
    api = free_port()
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}
    unreachable = run(NERVE, "get", "brokers", env=env)
    assert unreachable.returncode == 1
    assert "cannot reach the Nerve control API" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    procs.start("nerve-up", NERVE, "up", "--ingress-port", str(free_port()), "--api-port", str(api),
                "--state-dir", str(tmp_path / "state"))
    wait_http(f"http://127.0.0.1:{api}/healthz")
    env["NERVE_TOKEN_FILE"] = str(tmp_path / "state" / "token")
    bad = """apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: bad, namespace: ns1}
spec:
  broker: default
  subscriber: {uri: "/relative"}
  delivery: {retry: -3}
"""
    result = run(NERVE, "apply", "-f", "-", env=env, stdin=bad)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: Trigger/ns1/bad: spec.subscriber.uri: '/relative' must be an absolute URI with a scheme and host",
        "error: Trigger/ns1/bad: spec.delivery.retry: -3 must be an integer >= 0",
    ]
    assert run(NERVE, "get", "triggers", "-n", "ns1", env=env).stdout == ""
    unknown = run(NERVE, "get", "persistentvolumeclaims", env=env)
    assert unknown.returncode == 2
    assert 'doesn\'t have a resource type "persistentvolumeclaims"' in unknown.stderr
    missing = run(NERVE, "describe", "broker", "nope", env=env)
    assert missing.returncode == 2
    assert 'not found' in missing.stderr
    bad_yaml = run(NERVE, "apply", "-f", "-", env=env, stdin="kind: [unclosed")
    assert bad_yaml.returncode == 2
    assert "not valid YAML" in bad_yaml.stderr
    assert len(bad_yaml.stderr.strip().splitlines()) == 1
