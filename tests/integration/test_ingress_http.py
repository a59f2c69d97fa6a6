"""Every row of the ingress status-code table, as a producer with curl would meet it."""

from __future__ import annotations

import asyncio
import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from ingress.settings import IngressSettings
from nerve.send import build, send
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event, running_stack

BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: ns1}
"""


def trigger(url: str, name: str = "all", **filters: str) -> str:
    return f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}, namespace: ns1}}
spec:
  broker: default
  filter: {{attributes: {json.dumps(filters)}}}
  subscriber: {{uri: "{url}"}}
"""


BINARY = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
          "Content-Type": "application/json"}


async def _post(stack: Stack, path: str, headers: dict[str, str], body: bytes = b"{}",
                method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    async with stack.session.request(method, stack.ingress + path, headers=headers, data=body) as r:
        return r.status, dict(r.headers), await r.read()


async def test_options_advertises_post(stack: Stack) -> None:
    status, headers, _ = await _post(stack, "/ns1/default", {}, b"", "OPTIONS")
    assert status == 200
    assert headers["Allow"] == "POST, OPTIONS"
    assert headers["WebHook-Allowed-Origin"] == "*"


async def test_other_methods_get_405_with_allow(stack: Stack) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        status, headers, body = await _post(stack, "/ns1/default", {}, b"", method)
        assert status == 405, method
        assert headers["Allow"] == "POST, OPTIONS"
        if method != "HEAD":
            assert json.loads(body)["error"] == "MethodNotAllowed"


async def test_root_is_404_and_malformed_paths_are_400(stack: Stack) -> None:
    assert (await _post(stack, "/", BINARY))[0] == 404
    for path in ("/ns1", "/ns1/default/extra", "/ns1//"):
        status, _, body = await _post(stack, path, BINARY)
        assert status == 400, path
        assert json.loads(body)["reason"] == \
            f"path {path!r} must be /<namespace>/<broker> or /channels/<namespace>/<channel>"


async def test_root_404_says_where_events_go(stack: Stack) -> None:
    status, _, body = await _post(stack, "/", BINARY)
    assert (status, json.loads(body)["reason"]) == (404, "no Broker or Channel at /; send to "
                                                  "/<namespace>/<broker> or /channels/<namespace>/<channel>")


async def test_unknown_broker_is_404_with_a_reason(stack: Stack) -> None:
    status, _, body = await _post(stack, "/ns1/nope", BINARY)
    assert status == 404
    assert json.loads(body)["reason"] == 'brokers.eventing.knative.dev "nope" not found'


async def test_invalid_events_are_400_naming_the_attribute(stack: Stack) -> None:
    await stack.apply(BROKER)
    cases = {
        "specversion": {k: v for k, v in BINARY.items() if k != "ce-specversion"},
        "type": {k: v for k, v in BINARY.items() if k != "ce-type"},
        "source": {k: v for k, v in BINARY.items() if k != "ce-source"},
        "id": {k: v for k, v in BINARY.items() if k != "ce-id"},
    }
    for field, headers in cases.items():
        status, _, body = await _post(stack, "/ns1/default", headers)
        assert status == 400, field
        assert json.loads(body)["field"] == field
    status, _, body = await _post(stack, "/ns1/default", {**BINARY, "ce-specversion": "0.2"})
    assert status == 400
    assert "unsupported specversion" in json.loads(body)["reason"]
    status, _, body = await _post(stack, "/ns1/default", {"Content-Type": "application/cloudevents+json"}, b"{oops")
    assert status == 400
    assert "not valid JSON" in json.loads(body)["reason"]


async def test_accepted_events_get_202_in_every_mode_and_version(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    assert (await _post(stack, "/ns1/default", BINARY))[0] == 202
    assert (await _post(stack, "/ns1/default/", {**BINARY, "ce-id": "2", "ce-specversion": "0.3"}))[0] == 202
    structured = {"specversion": "1.0", "id": "3", "source": "/s", "type": "t", "data": {"k": 1}}
    assert (await _post(stack, "/ns1/default", {"Content-Type": "application/cloudevents+json"},
                        json.dumps(structured).encode()))[0] == 202
    batch = [{**structured, "id": "4"}, {**structured, "id": "5"}]
    assert (await _post(stack, "/ns1/default", {"Content-Type": "application/cloudevents-batch+json"},
                        json.dumps(batch).encode()))[0] == 202
    await receiver.wait_for(5)
    assert sorted(receiver.ids) == ["1", "2", "3", "4", "5"]
    assert json.loads(receiver.received[2].body) == {"k": 1} or json.loads(
        next(r.body for r in receiver.received if r.event.id == "3")) == {"k": 1}


async def test_subscribers_see_arrival_time_but_never_the_ttl(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    assert await stack.send("/ns1/default", event(1)) == 202
    [got] = await receiver.wait_for(1)
    assert "knativearrivaltime" in got.attributes
    assert "knativebrokerttl" not in got.attributes
    assert not any(h.lower() == "ce-knativebrokerttl" for h in receiver.received[0].headers)


async def test_a_spent_ttl_is_400(stack: Stack) -> None:
    await stack.apply(BROKER)
    status, _, body = await _post(stack, "/ns1/default", {**BINARY, "ce-knativebrokerttl": "1"})
    assert status == 400
    assert json.loads(body)["field"] == "knativebrokerttl"


async def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    async with running_stack(tmp_path, ingress=IngressSettings(port=0, max_body_bytes=1024)) as stack:
        await stack.apply(BROKER)
        status, _, body = await _post(stack, "/ns1/default", BINARY, b"x" * 2048)
        assert status == 413
        assert "1024-byte limit" in json.loads(body)["reason"]
        # Chunked bodies without a Content-Length are caught too.
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(4):
                yield b"y" * 512
        async with stack.session.post(stack.ingress + "/ns1/default", headers=BINARY, data=chunks()) as r:
            assert r.status == 413
        assert (await _post(stack, "/ns1/default", BINARY, b"x" * 1000))[0] == 202


async def test_a_full_memory_channel_answers_503_and_loses_nothing_it_accepted(tmp_path: Path) -> None:
    from channels.memory import MemorySettings

    blocked = Receiver(lambda i, e: _slow())
    await blocked.start()
    try:
        async with running_stack(tmp_path, memory=MemorySettings(capacity=5)) as stack:
            await stack.apply(BROKER, trigger(blocked.url))
            statuses = [await stack.send("/ns1/default", event(i)) for i in range(12)]
            assert 503 in statuses
            accepted = [str(i) for i, s in enumerate(statuses) if s == 202]
            assert len(accepted) >= 5
            await blocked.wait_for(len(accepted), timeout=30)
            await blocked.settle()
            assert sorted(blocked.ids) == sorted(accepted)
    finally:
        await blocked.stop()


async def _slow() -> Answer:
    return Answer(202, delay_s=0.3)


async def test_metrics_count_events_per_broker(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url, name="metered"))
    await stack.send("/ns1/default", event(1, type_="metered.type"))
    await receiver.wait_for(1)
    async with aiohttp.ClientSession() as session, session.get(stack.api + "/metrics") as r:
        text = await r.text()
    assert 'mt_broker_ingress_event_count_total{broker_name="default",event_type="metered.type",' \
           'namespace_name="ns1",response_code="202",response_code_class="2xx"}' in text
    assert 'trigger_name="metered"' in text
    for path in ("/healthz", "/readyz"):
        async with aiohttp.ClientSession() as session, session.get(stack.api + path) as r:
            assert r.status == 200


def _http_client_post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
    """POST with Python's http.client, which (like Node's http) writes a str header value as Latin-1 bytes."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("POST", parts.path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


async def test_header_values_that_are_not_utf8_are_400_naming_the_attribute(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    url = stack.ingress + "/ns1/default"
    for headers, field in [({"ce-subject": "caf\u00e9"}, "subject"),  # Latin-1 byte E9 on the wire
                           ({"ce-subject": "bad%FFutf8"}, "subject"),
                           ({"ce-partitionkey": "%C0%A0"}, "partitionkey"),
                           ({"traceparent": "\u00ff"}, "traceparent")]:
        status, body = await asyncio.to_thread(_http_client_post, url, {**BINARY, **headers}, b"{}")
        assert (status, body.get("field")) == (400, field), (headers, body)
        assert "UTF-8" in body["reason"]
    # Raw UTF-8 is the text it spells: accepted, and delivered percent-encoded as the binding says.
    status, _ = await asyncio.to_thread(_http_client_post, url,
                                        {**BINARY, "ce-id": "ok", "ce-subject": "caf\u00e9".encode().decode("latin-1")},
                                        b"{}")
    assert status == 202
    [got] = await receiver.wait_for(1)
    await receiver.settle()
    assert receiver.ids == ["ok"]
    assert got.attributes["subject"] == "caf\u00e9"
    assert receiver.received[0].headers["ce-subject"] == "caf%C3%A9"


async def test_nerve_send_without_data_invents_no_content_type(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    event = build("t", "/s", None, event_id="no-data", content_type="application/json", extensions={})
    status, _ = await asyncio.to_thread(send, stack.ingress + "/ns1/default", event, structured=False)
    assert status == 202
    [got] = await receiver.wait_for(1)
    assert "datacontenttype" not in got.attributes
    assert got.data is None
