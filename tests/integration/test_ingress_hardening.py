"""Issue 9 at the ingress: what fuzzing and abuse broke, through the HTTP ingress as a producer meets it.

Label cardinality and label safety (/metrics), trailing newlines in names, a producer-raised TTL, the
former 500s, and what a malformed request leaves in the log.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import logging
import re
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.events import Event
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event

NS = "h9"
BROKER = f"""
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: hardened, namespace: {NS}}}
"""
PATH = f"/{NS}/hardened"
BINARY = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
          "Content-Type": "application/json"}
STRUCTURED = {"Content-Type": "application/cloudevents+json"}


def trigger(url: str, name: str = "all", **filters: str) -> str:
    return f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}, namespace: {NS}}}
spec:
  broker: hardened
  filter: {{attributes: {json.dumps(filters)}}}
  subscriber: {{uri: "{url}"}}
"""


async def _post(stack: Stack, path: str, headers: dict[str, str], body: bytes = b"{}") -> tuple[int, dict[str, str]]:
    async with stack.session.post(stack.ingress + path, headers=headers, data=body) as r:
        raw = await r.read()
        return r.status, json.loads(raw) if raw else {}


async def _metrics(stack: Stack) -> tuple[int, str]:
    async with stack.session.get(stack.api + "/metrics") as r:
        return r.status, await r.text()


def _ce(id_: str, **extra: object) -> bytes:
    return json.dumps({"specversion": "1.0", "id": id_, "source": "/s", "type": "t", **extra}).encode()


# ----------------------------------------------------------------------------------- 1. label cardinality


async def test_distinct_types_and_unknown_paths_leave_metrics_small(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    _, before = await _metrics(stack)
    gate = asyncio.Semaphore(32)

    async def send(path: str, type_: str) -> int:
        async with gate:
            return (await _post(stack, path, {**BINARY, "ce-id": type_, "ce-type": type_}))[0]

    statuses = await asyncio.gather(*(send(PATH, f"flood.{i}") for i in range(5000)))
    assert set(statuses) == {202}
    statuses = await asyncio.gather(*(send(f"/{NS}/nope-{i}", "t") for i in range(5000)))
    assert set(statuses) == {404}
    await receiver.wait_for(5000, timeout=120)
    status, after = await _metrics(stack)
    assert status == 200
    # Each distinct type is a counter and 13-bucket histograms, in ingress and dispatcher, about 10 KB of
    # text: unbounded, 5,000 types grew /metrics by about 50 MB. Capped at 100 per Broker and per Trigger
    # (plus "other"), the growth stays about 1 MB per metric family whatever producers send: the older family
    # (--legacy-metrics, on by default) and Knative's current one (14-bucket kn_eventing_* histograms with
    # Knative's longer attribute set, about 2 MB) together stay under 3.5 MB.
    assert len(after) - len(before) < 3_500_000, len(after) - len(before)
    kn_types = set(re.findall(rf'kn_eventing_dispatch_duration_seconds_count\{{[^}}]*cloudevents_type="([^"]*)"'
                              rf'[^}}]*messaging_destination_name="trigger:[^"]*\.{NS}"', after))
    assert len(kn_types) == 101 and "other" in kn_types
    series = [line for line in after.splitlines() if line.startswith("mt_broker_") and f'"{NS}"' in line]
    assert len(series) < 6_000, len(series)
    ingress_types = set(re.findall(rf'mt_broker_ingress_event_count_total\{{broker_name="hardened",'
                                   rf'event_type="([^"]*)",namespace_name="{NS}"', after))
    filter_types = set(re.findall(rf'mt_broker_filter_event_count_total\{{broker_name="hardened",'
                                  rf'event_type="([^"]*)",namespace_name="{NS}"', after))
    assert len(ingress_types) == 101 and "other" in ingress_types
    assert len(filter_types) == 101 and "other" in filter_types
    assert "nope-" not in after  # an unknown path is never a label
    # Every event is still counted: the 4,900 past the cap under "other".
    other = re.search(rf'mt_broker_ingress_event_count_total\{{broker_name="hardened",event_type="other",'
                      rf'namespace_name="{NS}",response_code="202",response_code_class="2xx"}} (\S+)', after)
    assert other is not None and float(other.group(1)) == 4900


# ----------------------------------------------------------------------------------- 2. label safety


def test_a_surrogate_event_type_cannot_break_the_exposition() -> None:
    """Events reach the dispatcher from backends and sources too, not only through the ingress's checks."""
    from prometheus_client import generate_latest

    from core.delivery.metrics import TargetMetrics

    target = TargetMetrics(("h9-unit", "b", "t"))
    count, latency = target.dispatch("bad\udc80type", 200)
    count.inc()
    latency.observe(1.0)
    target.processing("bad\udc80type").observe(1.0)
    text = generate_latest().decode()
    assert 'event_type="bad\\\\udc80type"' in text


async def test_no_surrogate_reaches_a_label_and_metrics_stays_200(stack: Stack) -> None:
    await stack.apply(BROKER)
    refused = [
        (STRUCTURED, _ce("1", type="\udc80")),  # a JSON escape of a lone surrogate
        (STRUCTURED, _ce("2", subject="\ud800")),
        ({**BINARY, "ce-type": "%ED%B2%80"}, b"{}"),  # the UTF-8 form of a surrogate, percent-encoded
        ({**BINARY, "ce-type": "%FF"}, b"{}"),
    ]
    for headers, body in refused:
        status, answer = await _post(stack, PATH, headers, body)
        assert status == 400, (headers, body, answer)
    # A path naming no resource with a surrogate-like escape is answered, not a 500.
    assert (await _post(stack, f"/{NS}/%ED%B2%80", BINARY))[0] == 404
    status, text = await _metrics(stack)
    assert status == 200
    # The refused events were counted with no type (there is none): nothing of theirs became a label.
    types = set(re.findall(rf'mt_broker_ingress_event_count_total\{{broker_name="hardened",event_type="([^"]*)",'
                           rf'namespace_name="{NS}",response_code="400"', text))
    assert types == {""}, types


# ----------------------------------------------------------------------------------- 7. trailing newlines


async def test_names_and_values_ending_in_a_newline_are_400_not_202(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    status, answer = await _post(stack, PATH, STRUCTURED, _ce("n1", **{"myext\n": "v"}))
    assert (status, answer.get("field")) == (400, "myext\n"), answer
    assert "attribute name" in answer["reason"]
    status, answer = await _post(stack, PATH, STRUCTURED, _ce("n2", datacontenttype="application/json\n"))
    assert (status, answer.get("field")) == (400, "datacontenttype"), answer
    status, answer = await _post(stack, PATH, STRUCTURED, _ce("n3", time="2026-01-01T00:00:00Z\n"))
    assert (status, answer.get("field")) == (400, "time"), answer
    assert await stack.send(PATH, event("ok")) == 202
    await receiver.wait_for(1)
    await receiver.settle()
    assert receiver.ids == ["ok"]


# ----------------------------------------------------------------------------------- 8. producer TTL


async def test_a_producer_ttl_above_the_maximum_is_capped(stack: Stack) -> None:
    def echo(i: int, _: Event) -> Answer:
        return Answer(200, {"ce-specversion": "1.0", "ce-id": f"r{i}", "ce-source": "/echo", "ce-type": "loop",
                            "Content-Type": "application/json"}, b"{}")

    echoer = Receiver(echo)
    await echoer.start()
    try:
        await stack.apply(BROKER, trigger(echoer.url, name="loop", type="loop"))
        status, _ = await _post(stack, PATH, {**BINARY, "ce-type": "loop", "ce-knativebrokerttl": "100000"})
        assert status == 202
        deadline = time.monotonic() + 60
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.5:
            assert time.monotonic() < deadline, f"still looping after {len(echoer.received)} deliveries"
            # Unbounded, the loop passed 255 deliveries within seconds (53,528 in 30 s).
            assert len(echoer.received) <= 255
            if len(echoer.received) != seen:
                seen, quiet_since = len(echoer.received), time.monotonic()
            await asyncio.sleep(0.1)
        assert 250 <= len(echoer.received) <= 255
    finally:
        await echoer.stop()


# ----------------------------------------------------------------------------------- 12. no 500s


async def test_former_500s_are_400s_with_a_reason(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger(receiver.url))
    v03 = {"specversion": "0.3", "id": "b", "source": "/s", "type": "t", "datacontentencoding": "base64",
           "datacontenttype": "application/octet-stream", "data": "not*base64!"}
    status, answer = await _post(stack, PATH, STRUCTURED, json.dumps(v03).encode())
    assert (status, answer.get("field")) == (400, "data"), answer
    assert "base64" in answer["reason"]

    deep = b"[" * 1000 + b"]" * 1000
    for body in (b'{"specversion":"1.0","id":"d","source":"/s","type":"t","data":' + deep + b"}",
                 b'{"specversion":"1.0","id":"d","source":"/s","type":"t","data":' + b"[" * 5000 + b"]" * 5000 + b"}"):
        status, answer = await _post(stack, PATH, STRUCTURED, body)
        assert status == 400, answer
        assert "nest" in answer["reason"] or "depth" in answer["reason"]
    batch = b'[{"specversion":"1.0","id":"d","source":"/s","type":"t","data":' + b"[" * 300 + b"]" * 300 + b"}, 5]"
    status, answer = await _post(stack, PATH, {"Content-Type": "application/cloudevents-batch+json"}, batch)
    assert (status, answer.get("field")) == (400, "[1]"), answer

    status, answer = await _post(stack, PATH, {**BINARY, "ce-id": "gz", "Content-Encoding": "gzip"}, b"{}")
    assert (status, answer.get("field")) == (400, "content-encoding"), answer
    assert "Content-Encoding 'gzip'" in answer["reason"]
    # A body that is gzip is taken as the producer meant it: the event's data is what was compressed.
    status, _ = await _post(stack, PATH, {**BINARY, "ce-id": "gz-ok", "Content-Encoding": "gzip"},
                            gzip.compress(b'{"k": 1}'))
    assert status == 202
    [got] = await receiver.wait_for(1)
    assert (got.id, got.data) == ("gz-ok", b'{"k": 1}')


_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                       max_size=24)
_HEADER_NAMES = st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject",
                                 "ce-knativebrokerttl", "ce-Ext", "ce-", "ce-x_y", "Content-Type",
                                 "Content-Encoding", "traceparent", "knative-x"])
_HEADER_VALUES = st.one_of(_HEADER_TEXT, st.sampled_from(
    ["1.0", "0.3", "application/cloudevents+json", "application/cloudevents-batch+json", "application/json",
     "gzip", "deflate", "br", "identity", "x-bogus", "%FF", "%0A", "2026-02-30T00:00:00Z", "-1", "99999999999"]))
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                     max_leaves=12)
_STRUCTURED = st.dictionaries(
    st.sampled_from(["specversion", "id", "source", "type", "data", "data_base64", "datacontenttype",
                     "datacontentencoding", "time", "x\n", "Ext", "knativebrokerttl"]),
    st.one_of(_JSON, st.sampled_from(["1.0", "0.3", "base64", "!!", "application/json", "text/plain"])),
    max_size=10)
_BODIES = st.one_of(st.binary(max_size=64), _STRUCTURED.map(lambda d: json.dumps(d).encode()),
                    st.lists(_STRUCTURED, max_size=3).map(lambda d: json.dumps(d).encode()),
                    st.binary(max_size=64).map(gzip.compress))


def _raw_post(url: str, headers: list[tuple[str, str]], body: bytes) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("POST", parts.path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


async def test_fuzzed_requests_never_get_a_5xx(stack: Stack) -> None:
    await stack.apply(BROKER)
    url = stack.ingress + PATH
    seen: list[int] = []

    # No shrinking: a request that hangs would be retried for minutes; the failing request is in the message.
    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
    @given(headers=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8), body=_BODIES,
           base=st.booleans())
    def probe(headers: list[tuple[str, str]], body: bytes, base: bool) -> None:
        pairs = ([*BINARY.items()] if base else []) + headers
        try:
            status = _raw_post(url, pairs, body)
        except OSError as exc:
            raise AssertionError(f"no answer ({exc!r}) to {pairs} {body[:80]!r}") from exc
        seen.append(status)
        assert status < 500, (pairs, body)

    await asyncio.to_thread(probe)
    assert len(seen) >= 300
    assert 202 in seen and 400 in seen
    status, _ = await _metrics(stack)
    assert status == 200


# ----------------------------------------------------------------------------------- 15. logs


async def test_malformed_requests_log_one_escaped_debug_line_and_no_traceback(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    await stack.apply(BROKER)
    caplog.set_level(logging.DEBUG, logger="nerve")
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    forged = "x%0A2026-12-01 ERROR nerve.ingress forged line"
    assert (await _post(stack, PATH, {**BINARY, "ce-id": forged, "ce-type": ""}))[0] == 400
    assert (await _post(stack, PATH, {**BINARY, "Content-Encoding": "gzip"}))[0] == 400
    assert (await _post(stack, f"/{NS}/nope%0Aforged", BINARY))[0] == 404
    # Malformed HTTP that aiohttp itself refuses, before the ingress sees it.
    parts = urlsplit(stack.ingress)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nce-id: \xff\x00bad\r\nno colon here\r\n\r\n")
    await writer.drain()
    assert b" 400 " in await reader.readline()
    writer.close()
    await writer.wait_closed()

    records = [r for r in caplog.records if r.name.startswith(("nerve", "aiohttp"))]
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.getMessage() for r in records]
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records]
    assert all("\n" not in r.getMessage() for r in records), [r.getMessage() for r in records]
    refused = [r.getMessage() for r in records if "refused" in r.getMessage()]
    assert len(refused) == 4, refused
    # The path's %0A is a newline once decoded: it is logged as the two characters \n, on the same line.
    assert any("nope\\nforged" in m for m in refused), refused
    status, text = await _metrics(stack)
    assert status == 200
    assert re.search(r'nerve_ingress_refused_total\{reason="BadHttpMessage"\} [1-9]', text)
    assert re.search(r'nerve_ingress_refused_total\{reason="InvalidEvent"\} [1-9]', text)



async def test_a_newline_in_an_event_id_cannot_forge_a_service_log_line(stack: Stack) -> None:
    """The formatter every service logs through (core/runtime.py), on a delivery log line quoting the id."""
    import io

    from core.log_lines import FORMAT, OneLineFormatter

    failing = Receiver(lambda i, e: Answer(500))
    await failing.start()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logger = logging.getLogger("nerve")
    logger.addHandler(handler)
    try:
        await stack.apply(BROKER, trigger(failing.url) + "  delivery: {retry: 0}\n")
        forged = "x%0A2026-12-01 00:00:00,000 ERROR nerve.control: forged"
        assert (await _post(stack, PATH, {**BINARY, "ce-id": forged}))[0] == 202
        await failing.wait_for(1)

        async def logged() -> bool:
            return "forged" in out.getvalue()
        from tests.support.stack import eventually
        await eventually(logged)
    finally:
        logger.removeHandler(handler)
        await failing.stop()
    lines = out.getvalue().splitlines()
    [line] = [line for line in lines if "forged" in line]
    assert "event x\\n2026-12-01" in line
    assert not any(line.startswith("2026-12-01 00:00:00,000") for line in lines)
