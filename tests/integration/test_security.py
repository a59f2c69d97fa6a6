"""The control API as an attacker and a careless operator meet it (issue 9, defect 3).

A web page in the operator's browser, a process on another machine, a `nerve get -o yaml` pasted into a
ticket: none of them may change or read the broker's configuration. Every test goes through HTTP, the
`nerve` CLI or the files on disk, as a user would.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from core.settings import parse
from tests.support.launchers import free_port
from tests.support.services import Service, api_token, http_json
from tests.support.stack import Stack, running_stack

NERVE = str(Path(sys.executable).with_name("nerve"))
BROKER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "b", "namespace": "ns1"}}
KAFKA_CONFIG = {
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kafka-broker-config", "namespace": "ns1"},
    "data": {"bootstrap.servers": "kafka:9092", "sasl.mechanism": "PLAIN", "sasl.password": "hunter2",
             "user.key": "-----BEGIN PRIVATE KEY-----", "token": "t0k3n", "auth.secret.ref.name": "creds"},
}
SECRET_VALUES = ("hunter2", "-----BEGIN PRIVATE KEY-----", "t0k3n")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def call(stack: Stack, method: str, path: str, *, headers: dict[str, str] | None = None,
               data: bytes | None = None, token: bool = False) -> tuple[int, Any]:
    """One request in a session that carries no token unless `token`: what anyone on the network sends."""
    hdrs = {**({"Authorization": f"Bearer {stack.token}"} if token else {}), **(headers or {})}
    async with aiohttp.ClientSession() as session, \
            session.request(method, stack.api + path, headers=hdrs, data=data) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


# ------------------------------------------------------------------------------------------ binds


@pytest.mark.parametrize("module", ["control", "ingress", "dispatcher", "sources"])
def test_every_service_listens_on_loopback_unless_told_otherwise(module: str) -> None:
    command_line = importlib.import_module(f"{module}.__main__").command_line()
    values = parse(argparse.ArgumentParser(prog=module), command_line, [], environ={})
    assert values["host"] == "127.0.0.1"
    container = parse(argparse.ArgumentParser(prog=module), command_line, ["--host", "0.0.0.0"], environ={})
    assert container["host"] == "0.0.0.0"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port`, from /proc/net/tcp (state 0A is LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


# ------------------------------------------------------------------------------------------ python -m control


def test_python_m_control_writes_a_private_token_and_refuses_requests_without_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    api = free_port()
    control = Service("control", "control", ["--port", str(api), "--state-dir", str(state), "--backend", "nats",
                                             "--nats-url", "nats://127.0.0.1:9"], tmp_path, api)
    env_token = os.environ.pop("NERVE_TOKEN", None)
    try:
        control.start()
        control.wait_ready(min_generation=0)
        assert _listening_addresses(api) == {"127.0.0.1"}
        token = api_token(state)
        assert len(token) >= 32
        assert (mode(state), mode(state / "token")) == (0o700, 0o600)
        url = f"http://127.0.0.1:{api}/api/v1/apply"
        status, body = http_json(url, {"items": [BROKER]})
        assert (status, body["error"]) == (401, "Unauthorized")
        status, body = http_json(url, {"items": [BROKER]}, token="not-" + token)
        assert (status, body["error"]) == (401, "Unauthorized")
        status, body = http_json(url, {"items": [BROKER]}, token=token)
        assert status == 200, body
        for name in ("nerve.db", "nerve.db-wal", "nerve.db-shm"):
            assert mode(state / name) == 0o600, name
        control.stop()
        control.start()  # a restart keeps the token: a CLI that read it keeps working
        control.wait_ready(min_generation=0)
        assert api_token(state) == token
        assert http_json(f"http://127.0.0.1:{api}/api/v1/resources/brokers/ns1/b", token=token)[0] == 200
    finally:
        control.stop()
        if env_token is not None:
            os.environ["NERVE_TOKEN"] = env_token


# ------------------------------------------------------------------------------------------ the token


async def test_every_api_request_needs_the_token_and_health_and_metrics_do_not(stack: Stack) -> None:
    for method, path in [("GET", "/api/v1/resources/brokers"), ("GET", "/api/v1/resources/brokers/ns1/b"),
                         ("DELETE", "/api/v1/resources/brokers/ns1/b")]:
        async with aiohttp.ClientSession() as anyone, anyone.request(method, stack.api + path) as response:
            assert response.status == 401, (method, path)
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="nerve"'
        status, body = await call(stack, method, path)
        assert status == 401, (method, path)
        assert body["error"] == "Unauthorized" and "Authorization: Bearer" in body["reason"]
    status, _ = await call(stack, "POST", "/api/v1/apply", data=b'{"items": []}',
                           headers={"Content-Type": "application/json", "Authorization": "Bearer wrong"})
    assert status == 401
    status, _ = await call(stack, "GET", "/api/v1/resources/brokers", headers={"Authorization": stack.token})
    assert status == 401  # the scheme is part of the header
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await call(stack, "GET", path))[0] == 200, path
    for path in ("//api/v1/resources/brokers", "/api%2Fv1/resources/brokers", "/nothing-here"):
        assert (await call(stack, "GET", path))[0] == 401, path
    assert (await call(stack, "GET", "/api/v1/resources/brokers", token=True))[0] == 200
    assert mode(stack.nerve.settings.state_dir / "token") == 0o600


async def test_nerve_given_a_token_uses_it_instead_of_generating_one(tmp_path: Path) -> None:
    async with running_stack(tmp_path, token="chosen-by-the-operator") as stack:
        assert stack.token == "chosen-by-the-operator"
        assert not (tmp_path / "token").exists()
        assert (await call(stack, "GET", "/api/v1/resources/brokers", token=True))[0] == 200


async def _cli(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(NERVE, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_reads_the_token_as_kubectl_reads_a_kubeconfig(stack: Stack, tmp_path: Path) -> None:
    await stack.apply(BROKER)
    bare = {k: v for k, v in os.environ.items() if k not in ("NERVE_TOKEN", "NERVE_TOKEN_FILE")}
    bare["NERVE_SERVER"] = stack.api
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, err = await _cli(elsewhere, bare, "get", "brokers", "-n", "ns1")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "token" in err and "Traceback" not in err
    # Run from the directory `nerve up` ran in, the CLI finds .nerve/token by itself.
    (elsewhere / ".nerve").mkdir()
    (elsewhere / ".nerve" / "token").write_text(stack.token + "\n")
    code, out, err = await _cli(elsewhere, bare, "get", "brokers", "-n", "ns1")
    assert (code, out.split()[5]) == (0, "b"), err
    (elsewhere / ".nerve" / "token").write_text("stale\n")
    code, out, err = await _cli(elsewhere, bare, "get", "brokers", "-n", "ns1", "--token", stack.token)
    assert code == 0, err
    code, out, err = await _cli(elsewhere, {**bare, "NERVE_TOKEN": stack.token}, "get", "brokers", "-n", "ns1")
    assert code == 0, err
    code, out, err = await _cli(tmp_path, {**bare, "NERVE_TOKEN_FILE": str(stack.nerve.settings.state_dir / "token")},
                                "describe", "broker", "b", "-n", "ns1")
    assert code == 0, err
    code, _, err = await _cli(elsewhere, bare, "get", "brokers", "--token-file", str(tmp_path / "missing"))
    assert code == 2 and "missing" in err and "no such file" in err
    code, _, err = await _cli(elsewhere, {**bare, "NERVE_TOKEN": "two\nlines"}, "get", "brokers")
    assert (code, err.strip()) == (2, "error: --token / NERVE_TOKEN: a token is printable ASCII without spaces")


# ------------------------------------------------------------------------------------------ web pages


async def test_a_json_body_sent_as_text_plain_is_refused_with_415(stack: Stack) -> None:
    """`text/plain` is what a page's fetch() or form can send without a CORS preflight."""
    import orjson

    status, body = await call(stack, "POST", "/api/v1/apply", token=True, data=orjson.dumps({"items": [BROKER]}),
                              headers={"Content-Type": "text/plain"})
    assert (status, body["error"], body["field"]) == (415, "UnsupportedMediaType", "Content-Type")
    status, body = await call(stack, "POST", "/api/v1/apply", token=True, data=orjson.dumps({"items": [BROKER]}))
    assert status == 415
    # A parameter Python's email parser cannot read (aiohttp's request.content_type raised: a 500).
    status, body = await call(stack, "POST", "/api/v1/apply", token=True, data=orjson.dumps({"items": [BROKER]}),
                              headers={"Content-Type": "text/plain;P*"})
    assert (status, body["reason"]) == (415, "Content-Type 'text/plain': the control API takes application/json "
                                             "bodies")
    assert (await call(stack, "GET", "/api/v1/resources/brokers/ns1/b", token=True))[0] == 404
    status, _ = await call(stack, "POST", "/api/v1/apply", token=True, data=orjson.dumps({"items": [BROKER]}),
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 200


async def test_a_dns_rebound_host_is_refused_with_403(stack: Stack) -> None:
    port = stack.api.rsplit(":", 1)[1]
    status, body = await call(stack, "GET", "/api/v1/resources/brokers", token=True,
                              headers={"Host": f"attacker.example:{port}"})
    assert (status, body["error"]) == (403, "Forbidden")
    assert "attacker.example" in body["reason"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "10.1.2.3"):
        assert (await call(stack, "GET", "/api/v1/resources/brokers", token=True,
                           headers={"Host": host}))[0] == 200, host


async def test_a_named_host_is_answered_once_configured(tmp_path: Path) -> None:
    async with running_stack(tmp_path, allowed_hosts="control, nerve.internal") as stack:
        for host, expected in [("control:8081", 200), ("NERVE.internal", 200), ("other:8081", 403)]:
            assert (await call(stack, "GET", "/api/v1/resources/brokers", token=True,
                               headers={"Host": host}))[0] == expected, host


async def test_any_origin_not_allowed_is_refused_with_403_even_with_the_token(tmp_path: Path) -> None:
    async with running_stack(tmp_path, allowed_origins="https://console.example") as stack:
        status, body = await call(stack, "GET", "/api/v1/resources/brokers", token=True,
                                  headers={"Origin": "https://attacker.example"})
        assert (status, body["error"]) == (403, "Forbidden")
        assert (await call(stack, "GET", "/api/v1/resources/brokers", token=True,
                           headers={"Origin": "null"}))[0] == 403
        assert (await call(stack, "GET", "/api/v1/resources/brokers", token=True,
                           headers={"Origin": "https://console.example"}))[0] == 200


# ------------------------------------------------------------------------------------------ secrets


async def test_configmap_secrets_are_redacted_unless_asked_for(stack: Stack) -> None:
    await stack.apply(KAFKA_CONFIG)
    one = await stack.get("configmap", "ns1", "kafka-broker-config")
    assert one["data"] == {"bootstrap.servers": "kafka:9092", "sasl.mechanism": "PLAIN", "sasl.password": "<redacted>",
                           "user.key": "<redacted>", "token": "<redacted>", "auth.secret.ref.name": "creds"}
    status, listed = await call(stack, "GET", "/api/v1/resources/configmaps?namespace=ns1", token=True)
    assert status == 200 and not any(v in str(listed) for v in SECRET_VALUES)
    status, shown = await call(stack, "GET", "/api/v1/resources/configmaps/ns1/kafka-broker-config?showSecrets=true",
                               token=True)
    assert (status, shown["data"]) == (200, KAFKA_CONFIG["data"])
    status, listed = await call(stack, "GET", "/api/v1/resources/configmaps?namespace=ns1&showSecrets=true",
                                token=True)
    assert listed["items"][0]["data"]["sasl.password"] == "hunter2"
    assert (await call(stack, "GET", "/api/v1/resources/configmaps?showSecrets=true"))[0] == 401
    status, body = await call(stack, "GET", "/api/v1/resources/configmaps?showSecrets=yes", token=True)
    assert (status, body["field"]) == (400, "showSecrets")

    code, out, err = await _cli(stack.nerve.settings.state_dir, stack.cli_env, "get", "cm", "kafka-broker-config",
                                "-n", "ns1", "-o", "yaml")
    assert code == 0, err
    assert yaml.safe_load(out)["data"]["sasl.password"] == "<redacted>"
    code, out, err = await _cli(stack.nerve.settings.state_dir, stack.cli_env, "describe", "cm",
                                "kafka-broker-config", "-n", "ns1")
    assert code == 0 and not any(v in out for v in SECRET_VALUES), out
    code, out, err = await _cli(stack.nerve.settings.state_dir, stack.cli_env, "get", "cm", "kafka-broker-config",
                                "-n", "ns1", "-o", "json", "--show-secrets")
    assert code == 0, err
    assert '"hunter2"' in out


# ------------------------------------------------------------------------------------------ files


async def test_the_state_database_and_dir_are_private_even_when_an_older_nerve_left_them_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    (state / "nerve.db").touch()
    (state / "nerve.db").chmod(0o644)
    async with running_stack(state) as stack:
        await stack.apply(KAFKA_CONFIG)
        assert mode(state) == 0o700
        for name in ("nerve.db", "nerve.db-wal", "nerve.db-shm", "token"):
            assert mode(state / name) == 0o600, name
    fresh = tmp_path / "fresh"
    async with running_stack(fresh) as stack:
        await stack.apply(BROKER)
        assert (mode(fresh), mode(fresh / "nerve.db")) == (0o700, 0o600)


async def test_a_refused_request_is_one_escaped_debug_line_without_the_token(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nerve.control")
    status, _ = await call(stack, "GET", "/api/v1/resources/brokers%0AERROR forged line",
                           headers={"Authorization": "Bearer guessed-token"})
    assert status == 401
    refused = [r for r in caplog.records if r.name == "nerve.control" and "refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.DEBUG
    assert "\n" not in refused[0].getMessage() and "guessed-token" not in refused[0].getMessage()
