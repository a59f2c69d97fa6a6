"""`nerve up --transport-encryption strict` as a user runs it: plain http refused, https accepted with the
CA it prints and publishes, by curl --cacert and by the official CloudEvents SDK over requests."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import requests
import yaml
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.e2e.nerve_up import nerve_up
from tests.support.launchers import free_port
from tests.support.manifests import trigger
from tests.support.receiver import Receiver

BROKER_YAML = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: default}
"""


async def _curl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec("curl", "-sS", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def _sdk_send(url: str, ca: str, i: int, structured: bool) -> int:
    event = CloudEvent({"type": "dev.nerve.tls", "source": "/sdk", "id": f"sdk-{i}", "specversion": "1.0",
                        "datacontenttype": "application/json"}, {"n": i})
    message = (ce_http.to_structured if structured else ce_http.to_binary)(event, JSONFormat())
    return requests.post(url, headers=message.headers, data=message.body, verify=ca, timeout=10).status_code


async def test_strict_refuses_http_and_accepts_https_with_the_published_ca(tmp_path: Path,
                                                                          receiver: Receiver) -> None:
    https_port = free_port()
    async with nerve_up(tmp_path, "--transport-encryption", "strict", "--https-port", str(https_port)) as up:
        printed = up.log.read_text()
        match = re.search(r"CA: (\S+)", printed)
        assert match, printed
        ca = match.group(1)
        assert Path(ca) == tmp_path / ".nerve" / "tls" / "ca.crt"
        assert f"Brokers: https://127.0.0.1:{https_port}/<namespace>/<broker>" in printed
        await up.apply(BROKER_YAML)
        await up.apply(yaml.safe_dump(trigger("t1", receiver.url, namespace="default")))

        async def ready(kind: str, name: str) -> dict[str, object]:
            for _ in range(200):
                obj = await up.get(kind, name)
                if obj and any(c["type"] == "Ready" and c["status"] == "True"
                               for c in obj.get("status", {}).get("conditions", [])):
                    return obj
                await asyncio.sleep(0.05)
            raise AssertionError(f"{kind} {name} not Ready")

        broker = await ready("broker", "default")
        url = f"https://127.0.0.1:{https_port}/default/default"
        address = broker["status"]["address"]  # type: ignore[index]
        ca_pem = await asyncio.to_thread(Path(ca).read_text)
        assert address == {"name": "https", "url": url, "CACerts": ca_pem}
        await ready("trigger", "t1")

        # Plain http: no listener at all.
        code, _, err = await _curl("-o", "/dev/null", "-X", "POST", f"http://127.0.0.1:{up.ingress}/default/default")
        assert code == 7, err  # curl: failed to connect
        # https without the CA: the certificate is not trusted.
        code, _, err = await _curl("-o", "/dev/null", "-X", "POST", url)
        assert code == 60, err  # curl: peer certificate cannot be authenticated
        # https with the published CA: accepted.
        code, out, err = await _curl("--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", url, "-X", "POST",
                                     "-H", "Ce-Id: curl-1", "-H", "Ce-Specversion: 1.0", "-H", "Ce-Type: greeting",
                                     "-H", "Ce-Source: curl", "-H", "Content-Type: application/json",
                                     "-d", '{"msg":"Hello over TLS"}')
        assert (code, out) == (0, "202"), err
        # The official SDK over requests, verifying with the CA, binary and structured.
        assert await asyncio.to_thread(_sdk_send, url, ca, 1, False) == 202
        assert await asyncio.to_thread(_sdk_send, url, ca, 2, True) == 202
        received = await receiver.wait_for(3)
        assert sorted(e.id for e in received) == ["curl-1", "sdk-1", "sdk-2"]
        assert next(e for e in received if e.id == "curl-1").data == b'{"msg":"Hello over TLS"}'


async def _run(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, err.decode()


async def test_bad_tls_flags_are_refused_with_one_line(tmp_path: Path) -> None:
    from tests.e2e.nerve_up import NERVE
    code, err = await _run(NERVE, "up", "--state-dir", str(tmp_path), "--transport-encryption", "on")
    assert code == 2 and "--transport-encryption 'on': expected one of disabled, permissive, strict" in err
    code, err = await _run(sys.executable, "-m", "ingress", "--tls-cert", str(tmp_path / "tls.crt"))
    assert code == 2 and "--tls-cert and --tls-key go together" in err
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    code, err = await _run(sys.executable, "-m", "ingress", "--tls-cert", str(tmp_path / "tls.crt"),
                           "--tls-key", str(tmp_path / "tls.key"))
    assert code == 2 and "--tls-cert" in err and "Traceback" not in err
