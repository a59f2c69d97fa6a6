"""transport-encryption as a user of `nerve up` meets it: the ingress on https with the CA it publishes,
Brokers' and Channels' addresses as Knative writes them, strict refusing plain http, and a config-features
ConfigMap switching it on while running."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.events import to_binary
from ingress.settings import IngressSettings
from tests.support.manifests import BROKER, channel, trigger
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, eventually, running_stack

IMC = channel("c1", kind="InMemoryChannel")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _post(url: str, ca: Path | None, i: str) -> int:
    headers, body = to_binary(event(i))
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers,
                                                                ssl=context if context else True) as r:
        return r.status


async def _status(stack: Stack, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = {}

    async def ready() -> bool:
        nonlocal obj
        obj = await stack.get(kind, "ns1", name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))

    await eventually(ready)
    return dict(obj["status"])


@pytest.fixture
async def permissive(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, transport_encryption="permissive",
                             ingress=IngressSettings(port=0, https_port=0)) as stack:
        yield stack


async def test_permissive_serves_both_and_advertises_both(permissive: Stack, receiver: Receiver) -> None:
    stack = permissive
    ca = stack.nerve.ca_path
    assert ca is not None and ca.parent == stack.nerve.settings.state_dir / "tls"
    https, http = stack.nerve.ingress_https_url, stack.nerve.ingress_url
    assert https.startswith("https://127.0.0.1:") and http.startswith("http://127.0.0.1:")
    await stack.apply(BROKER, trigger("t1", receiver.url), IMC)
    status = await _status(stack, "broker", "default")
    # Knative's permissive Broker: address is the http one, addresses lists https (with CACerts) first.
    assert status["address"] == {"name": "http", "url": f"{http}/ns1/default"}
    assert status["addresses"] == [{"name": "https", "url": f"{https}/ns1/default", "CACerts": ca.read_text()},
                                   {"name": "http", "url": f"{http}/ns1/default"}]
    channel_status = await _status(stack, "inmemorychannel", "c1")
    assert [a["url"] for a in channel_status["addresses"]] == [f"{https}/channels/ns1/c1", f"{http}/channels/ns1/c1"]
    await _status(stack, "trigger", "t1")
    assert await _post(f"{https}/ns1/default", ca, "over-https") == 202
    assert await _post(f"{http}/ns1/default", None, "over-http") == 202
    assert sorted(e.id for e in await receiver.wait_for(2)) == ["over-http", "over-https"]
    # Without the published CA the https listener is not trusted.
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _post(f"{https}/ns1/default", None, "untrusted")


async def test_strict_serves_https_only(tmp_path: Path, receiver: Receiver) -> None:
    http_port = _free_port()
    async with running_stack(tmp_path, transport_encryption="strict", ingress_port=http_port,
                             ingress=IngressSettings(port=http_port, https_port=0)) as stack:
        ca = stack.nerve.ca_path
        assert ca is not None
        https = stack.nerve.ingress_https_url
        assert stack.nerve.ingress_url == https
        await stack.apply(BROKER, trigger("t1", receiver.url))
        status = await _status(stack, "broker", "default")
        address = {"name": "https", "url": f"{https}/ns1/default", "CACerts": ca.read_text()}
        assert status["address"] == address and status["addresses"] == [address]
        await _status(stack, "trigger", "t1")
        assert await _post(f"{https}/ns1/default", ca, "strict") == 202
        assert [e.id for e in await receiver.wait_for(1)] == ["strict"]
        with pytest.raises(aiohttp.ClientConnectorError):  # no plain listener at all
            await _post(f"http://127.0.0.1:{http_port}/ns1/default", None, "plain")


async def test_configmap_turns_strict_on_while_running(tmp_path: Path, receiver: Receiver) -> None:
    https_port = _free_port()
    async with running_stack(tmp_path, ingress=IngressSettings(port=0, https_port=https_port)) as stack:
        await stack.apply(BROKER, trigger("t1", receiver.url))
        assert "addresses" not in await _status(stack, "broker", "default")
        http = stack.nerve.ingress_url
        assert await _post(f"{http}/ns1/default", None, "before") == 202
        await stack.apply({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"namespace": "knative-eventing", "name": "config-features"},
                           "data": {"transport-encryption": "strict"}})
        ca = tmp_path / "tls" / "ca.crt"

        async def https_advertised() -> bool:
            status = await stack.get("broker", "ns1", "default")
            return status["status"].get("address", {}).get("CACerts") == (ca.read_text() if ca.exists() else None)

        await eventually(https_advertised)
        status = (await stack.get("broker", "ns1", "default"))["status"]
        assert status["address"]["url"] == f"https://127.0.0.1:{https_port}/ns1/default"
        # Knative's ServerManager: the http listener answers 404 under strict; https takes the events.
        assert await _post(f"{http}/ns1/default", None, "plain") == 404
        assert await _post(f"https://127.0.0.1:{https_port}/ns1/default", ca, "after") == 202
        assert [e.id for e in await receiver.wait_for(2)] == ["before", "after"]


async def test_a_sequence_runs_over_its_https_channels_under_strict(tmp_path: Path) -> None:
    from tests.support import functions
    steps = [Receiver(functions.appender(f"-{i}")) for i in (1, 2)]
    sink = Receiver()
    for r in (*steps, sink):
        await r.start()
    try:
        async with running_stack(tmp_path, transport_encryption="strict",
                                 ingress=IngressSettings(port=0, https_port=0)) as stack:
            ca = stack.nerve.ca_path
            assert ca is not None
            await stack.apply({"apiVersion": "flows.knative.dev/v1", "kind": "Sequence",
                               "metadata": {"name": "seq", "namespace": "ns1"},
                               "spec": {"steps": [{"uri": s.url} for s in steps], "reply": {"uri": sink.url}}})
            status = await _status(stack, "sequence", "seq")
            # The Sequence's address is its first channel's https one, CA and all; step 1's reply goes to
            # the second channel over https, verified against that CA by the dispatcher.
            assert status["address"]["url"] == f"{stack.nerve.ingress_https_url}/channels/ns1/seq-kn-sequence-0"
            assert status["address"]["CACerts"] == ca.read_text()
            headers, body = to_binary(event("s1", data=b'{"message": "go"}'))
            context = ssl.create_default_context(cafile=str(ca))
            async with aiohttp.ClientSession() as session, session.post(status["address"]["url"], data=body,
                                                                        headers=headers, ssl=context) as r:
                assert r.status == 202
            [got] = await sink.wait_for(1)
            assert json.loads(got.data or b"") == {"message": "go-1-2"}
    finally:
        for r in (*steps, sink):
            await r.stop()


async def test_switched_back_to_disabled_https_answers_404(tmp_path: Path, receiver: Receiver) -> None:
    https_port = _free_port()
    features: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"namespace": "knative-eventing", "name": "config-features"},
                                "data": {"transport-encryption": "permissive"}}
    async with running_stack(tmp_path, ingress=IngressSettings(port=0, https_port=https_port)) as stack:
        await stack.apply(BROKER, trigger("t1", receiver.url), features)
        ca = tmp_path / "tls" / "ca.crt"

        async def addresses() -> int:
            return len((await stack.get("broker", "ns1", "default"))["status"].get("addresses") or [])

        await eventually(lambda: addresses())
        https = f"https://127.0.0.1:{https_port}/ns1/default"
        assert await _post(https, ca, "on") == 202
        features["data"]["transport-encryption"] = "disabled"
        await stack.apply(features)
        await eventually(lambda: _no(addresses()))
        # As Knative's ServerManager: the https listener stays, and answers 404 while disabled.
        assert await _post(https, ca, "off") == 404
        assert await _post(f"{stack.ingress}/ns1/default", None, "plain") == 202
        assert [e.id for e in await receiver.wait_for(2)] == ["on", "plain"]


async def _no(count: Any) -> bool:
    return await count == 0
