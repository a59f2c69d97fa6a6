"""The seed's "ping source" walkthrough as a user runs it: `nerve up`, the seed's event-display
(examples/event-display/), `nerve apply -f examples/ping-source/`, `nerve get`, `nerve logs`, `nerve delete`;
and a restart of `nerve up` in the middle of a PingSource's ticks.

Liberties taken: free ports, and a schedule of every second instead of the example's every 5 seconds, so
that the test sees many ticks quickly.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.test_walkthrough import NERVE, REPO, Processes, procs, run, wait_http, wait_port
from tests.support.launchers import free_port

pytestmark = pytest.mark.e2e
__all__ = ["procs"]  # the fixture, imported for this module's tests


def ticks(text: str) -> list[float]:
    """The `time:` of every event an event display printed, as seconds."""
    found = re.findall(r"^  time: (\S+)$", text, re.MULTILINE)
    return [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in found]


def every_second(examples: Path) -> Path:
    copy = examples / "ping-source"
    shutil.copytree(REPO / "examples" / "ping-source", copy)
    source = copy / "01-pingsource.yaml"
    source.write_text(source.read_text().replace('"*/5 * * * * *"', '"* * * * * *"'))
    return copy


def wait_for(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.1)


def start_up(procs: Processes, name: str, api: int) -> subprocess.Popen[bytes]:
    procs.start(name, NERVE, "up", "--ingress-port", str(free_port()), "--api-port", str(api))
    wait_http(f"http://127.0.0.1:{api}/healthz")
    return procs.procs[-1]


def test_the_seed_s_ping_source_reaches_the_seed_s_event_display(tmp_path: Path, procs: Processes) -> None:
    api = free_port()
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}
    start_up(procs, "nerve-up", api)
    display = run(NERVE, "apply", "-f", str(REPO / "examples" / "event-display" / "01-event-display.yaml"),
                  env=env, cwd=tmp_path)
    assert display.returncode == 0, display.stderr
    applied = run(NERVE, "apply", "-f", str(every_second(tmp_path)), env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "pingsource.sources.knative.dev/test-ping-source created"

    def logs() -> str:
        return run(NERVE, "logs", "-l", "app=event-display", "--tail=100", env=env, cwd=tmp_path).stdout

    wait_for(lambda: len(ticks(logs())) >= 3, timeout=30)
    lines = [line for line in logs().splitlines() if re.search("time|message", line)]
    assert re.fullmatch(r"  time: \S+", lines[0]) and lines[1] == '    "message": "hello, world!"', lines[:2]
    assert "source: /apis/v1/namespaces/default/pingsources/test-ping-source" in logs()

    got = run(NERVE, "get", "pingsource", env=env, cwd=tmp_path)
    header, row = got.stdout.strip().splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "SINK", "AGE", "READY", "REASON"]
    name, *_, ready = row.split()
    sink = next(cell for cell in row.split() if cell.startswith("http"))  # after the schedule's fields
    assert (name, ready) == ("test-ping-source", "True")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/?", sink), sink
    sources = run(NERVE, "get", "sources", env=env, cwd=tmp_path)
    assert sources.stdout.splitlines()[1].split()[0] == "pingsource.sources.knative.dev/test-ping-source"

    deleted = run(NERVE, "delete", "pingsource", "test-ping-source", env=env, cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    time.sleep(0.5)
    count = len(ticks(logs()))
    time.sleep(2.5)
    assert len(ticks(logs())) == count


def test_a_restart_of_nerve_up_neither_doubles_nor_skips_a_tick(tmp_path: Path, procs: Processes) -> None:
    # The sink is a `nerve display` of its own, outside `nerve up`, so it listens throughout the restart.
    api, port = free_port(), free_port()
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}
    display_log = procs.start("display", NERVE, "display", "--port", str(port))
    wait_port(port)
    up = start_up(procs, "nerve-up", api)
    service = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: event-display\n  annotations:\n"
               f"    nerve.dev/url: http://127.0.0.1:{port}/\n")
    applied = run(NERVE, "apply", "-f", "-", "-f", str(every_second(tmp_path)), env=env, cwd=tmp_path, stdin=service)
    assert applied.returncode == 0, applied.stderr

    wait_for(lambda: len(ticks(display_log.read_text())) >= 3)
    # Stop `nerve up`, let a tick fall due while nothing runs, start it again in the same directory.
    up.send_signal(signal.SIGINT)
    up.wait(timeout=20)
    before = len(ticks(display_log.read_text()))
    time.sleep(1.5)
    assert len(ticks(display_log.read_text())) == before
    start_up(procs, "nerve-up-again", api)
    wait_for(lambda: len(ticks(display_log.read_text())) >= before + 4)
    seen = ticks(display_log.read_text())
    # Every second from the first tick on, once: none doubled by the restart, none skipped by it.
    # Ticks fired late together are sent at once and may arrive in any order: compared sorted.
    assert sorted(seen) == [min(seen) + i for i in range(len(seen))], seen
