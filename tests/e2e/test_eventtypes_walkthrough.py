"""`nerve up --eventtype-auto-create` as a user starts it, then the CLI: curl an event at a Broker, and
`nerve get eventtypes` lists the EventType auto-create registered for it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_walkthrough import NERVE, Processes, run, wait_http
from tests.support.launchers import free_port

pytestmark = pytest.mark.e2e

BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: default}
"""


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    yield p
    p.stop()


def test_nerve_up_with_auto_create_registers_what_a_broker_accepts(tmp_path: Path, procs: Processes) -> None:
    ingress, api = free_port(), free_port()
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}
    log = procs.start("nerve-up", NERVE, "up", "--ingress-port", str(ingress), "--api-port", str(api),
                      "--eventtype-auto-create")
    try:
        wait_http(f"http://127.0.0.1:{api}/healthz")
    except OSError:
        pytest.fail(f"nerve up did not come up:\n{log.read_text()}")
    applied = run(NERVE, "apply", "-f", "-", stdin=BROKER, env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    curl = run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{ingress}/default/default",
               "-X", "POST", "-H", "Ce-Id: 1", "-H", "Ce-Specversion: 1.0", "-H", "Ce-Type: com.example.order",
               "-H", "Ce-Source: /shop", "-H", "Content-Type: application/json", "-d", "{}", env=env)
    assert curl.stdout == "202", curl.stderr
    deadline = time.monotonic() + 15
    while True:
        listed = run(NERVE, "get", "eventtypes", env=env, cwd=tmp_path)
        lines = listed.stdout.strip().splitlines()
        if (len(lines) == 2 and lines[1].rstrip().endswith("True")) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert listed.returncode == 0, listed.stderr
    [header, row] = lines
    assert header.split() == ["NAME", "TYPE", "SOURCE", "SCHEMA", "REFERENCE", "DESCRIPTION", "READY", "REASON"]
    assert row.startswith("et-default-")
    assert row.split()[1:4] == ["com.example.order", "/shop", "default"]
    assert "Event Type auto-created by controller" in row
