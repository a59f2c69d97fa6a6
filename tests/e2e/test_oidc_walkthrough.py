"""examples/oidc-eventpolicy run as its README says: `nerve up`, `nerve display`, `nerve apply`,
`nerve token` and curl, as whole processes: a Broker behind transport-encryption strict (https with the
CA nerve up made), OIDC and an EventPolicy. Ports are free ones (the display URL in the copy adjusted)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from tests.e2e.test_walkthrough import NERVE, REPO, Processes, procs, run, wait_http, wait_port  # noqa: F401
from tests.support.launchers import free_port

AUDIENCE = "eventing.knative.dev/broker/oidc-example/default"
PRODUCER = "system:serviceaccount:oidc-example:producer"


def curl(url: str, ce_id: str, ce_type: str, token: str | None, env: dict[str, str], ca: Path | None) -> str:
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    trust = ["--cacert", str(ca)] if ca else []
    done = run("curl", "-sS", "-i", *trust, url, "-X", "POST", *auth, "-H", f"Ce-Id: {ce_id}",
               "-H", "Ce-Specversion: 1.0", "-H", f"Ce-Type: {ce_type}", "-H", "Ce-Source: /producer",
               "-H", "Content-Type: application/json",
               "-d", "{}", env=env)
    return done.stdout


def test_oidc_eventpolicy_walkthrough(tmp_path: Path, procs: Processes) -> None:  # noqa: F811
    ingress, https, api, display = free_port(), free_port(), free_port(), free_port()
    example = tmp_path / "oidc-eventpolicy"
    shutil.copytree(REPO / "examples" / "oidc-eventpolicy", example)
    service = example / "02-display.yaml"
    service.write_text(service.read_text().replace("127.0.0.1:9001", f"127.0.0.1:{display}"))
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}
    procs.start("nerve-up", NERVE, "up", "--ingress-port", str(ingress), "--https-port", str(https),
                "--api-port", str(api))
    display_log = procs.start("display", NERVE, "display", "--port", str(display))
    wait_http(f"http://127.0.0.1:{api}/healthz")
    wait_port(display)

    applied = run(NERVE, "apply", "-f", str(example), env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert "eventpolicy.eventing.knative.dev/producer-only created" in applied.stdout
    broker = run(NERVE, "get", "broker", "default", "-n", "oidc-example", "-o", "yaml", env=env, cwd=tmp_path)
    assert f"audience: {AUDIENCE}" in broker.stdout and "name: producer-only" in broker.stdout, broker.stdout
    url = f"https://127.0.0.1:{https}/oidc-example/default"
    assert f"url: {url}" in broker.stdout and "CACerts:" in broker.stdout, broker.stdout
    ca = tmp_path / ".nerve" / "tls" / "ca.crt"
    assert ca.is_file()

    token = run(NERVE, "token", "--audience", AUDIENCE, "--subject", PRODUCER, env=env, cwd=tmp_path)
    assert token.returncode == 0, token.stderr
    default = run(NERVE, "token", "--audience", AUDIENCE, env=env, cwd=tmp_path).stdout.strip()
    producer = token.stdout.strip()
    # strict: the plain listener takes no events, even with a good token
    plain = f"http://127.0.0.1:{ingress}/oidc-example/default"
    assert curl(plain, "plain", "com.example.hello", producer, env, None).startswith("HTTP/1.1 404")
    assert curl(url, "ok", "com.example.hello", producer, env, ca).startswith("HTTP/1.1 202")
    refused = curl(url, "anonymous", "com.example.hello", None, env, ca)
    assert refused.startswith("HTTP/1.1 401") and "WWW-Authenticate: Bearer" in refused
    assert curl(url, "other-subject", "com.example.hello", default, env, ca).startswith("HTTP/1.1 403")
    assert curl(url, "other-type", "org.other", producer, env, ca).startswith("HTTP/1.1 403")

    deadline = time.monotonic() + 20
    while "id: ok" not in display_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # anything refused would have arrived by now
    shown = display_log.read_text()
    assert shown.count("☁️  cloudevents.Event") == 1 and "id: ok" in shown
