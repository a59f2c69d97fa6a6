"""The seed's "ping source" walkthrough as a user runs it: `nerve up`, `nerve display`, `nerve apply -f
examples/ping-source/`, `nerve get`, a restart of `nerve up` in the middle, `nerve delete`.

Liberties taken: free ports (the display URL in 01-event-display.yaml adjusted to it) and a schedule of
every second instead of the example's every 5 seconds, so that the test sees many ticks quickly.
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


def ticks(log: Path) -> list[float]:
    """The `time:` of every event `nerve display` printed, as seconds."""
    found = re.findall(r"^  time: (\S+)$", log.read_text(), re.MULTILINE)
    return [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in found]


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


def test_the_seed_s_ping_source_through_a_restart(tmp_path: Path, procs: Processes) -> None:
    api, display = free_port(), free_port()
    examples = tmp_path / "ping-source"
    shutil.copytree(REPO / "examples" / "ping-source", examples)
    service = examples / "01-event-display.yaml"
    service.write_text(service.read_text().replace("127.0.0.1:9000", f"127.0.0.1:{display}"))
    source = examples / "02-pingsource.yaml"
    source.write_text(source.read_text().replace('"*/5 * * * * *"', '"* * * * * *"'))
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}

    up = start_up(procs, "nerve-up", api)
    display_log = procs.start("display", NERVE, "display", "--port", str(display))
    wait_port(display)

    applied = run(NERVE, "apply", "-f", str(examples), env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert "pingsource.sources.knative.dev/test-ping-source created" in applied.stdout

    wait_for(lambda: len(ticks(display_log)) >= 3)
    text = display_log.read_text()
    assert '"message": "hello, world!"' in text
    assert "type: dev.knative.sources.ping" in text
    assert "source: /apis/v1/namespaces/default/pingsources/test-ping-source" in text

    got = run(NERVE, "get", "pingsource", env=env, cwd=tmp_path)
    header, row = got.stdout.strip().splitlines()
    assert header.split() == ["NAME", "SINK", "SCHEDULE", "AGE", "READY", "REASON"]
    assert row.split()[:2] == ["test-ping-source", f"http://127.0.0.1:{display}/"]
    assert row.split()[-1] == "True"
    sources = run(NERVE, "get", "sources", env=env, cwd=tmp_path)
    assert sources.stdout.splitlines()[1].split()[0] == "pingsource.sources.knative.dev/test-ping-source"

    # Stop `nerve up`, let a tick fall due while nothing runs, start it again in the same directory.
    up.send_signal(signal.SIGINT)
    up.wait(timeout=20)
    before = len(ticks(display_log))
    time.sleep(1.5)
    assert len(ticks(display_log)) == before
    start_up(procs, "nerve-up-again", api)
    wait_for(lambda: len(ticks(display_log)) >= before + 4)
    seen = ticks(display_log)
    # Every second from the first tick on, once: none doubled by the restart, none skipped by it.
    assert seen == [seen[0] + i for i in range(len(seen))], seen

    deleted = run(NERVE, "delete", "pingsource", "test-ping-source", env=env, cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    time.sleep(0.5)
    count = len(ticks(display_log))
    time.sleep(2.5)
    assert len(ticks(display_log)) == count
