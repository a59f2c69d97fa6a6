"""The smallest requests the fuzz suite found breaking an invariant, kept as explicit cases, each named
with the defect of issue 9 it shows. They assert what a user must see (a 4xx naming the problem, a 202'd
event delivered, /metrics 200 and bounded), never the current behaviour.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.fuzz.conftest import Harness
from tests.fuzz.observe import METRICS_BOUND, metrics
from tests.fuzz.rawhttp import Client, Request, Response
from tests.fuzz.test_control import _dumps

PATH = "/fuzz/default"


def _send(harness: Harness, request: Request) -> Response:
    host, port = harness.stack.ingress.removeprefix("http://").split(":")
    client = Client(host, int(port))
    try:
        response: Response = harness.run(client.send(request))
        return response
    finally:
        harness.run(client.close())


def _binary(event_id: str, *extra: tuple[str, bytes], body: bytes = b"{}",
            content_type: bytes = b"application/json") -> Request:
    headers = [("ce-specversion", b"1.0"), ("ce-id", event_id.encode()), ("ce-source", b"/fuzz"),
               ("ce-type", b"dev.nerve.fuzz"), ("Content-Type", content_type), *extra]
    return Request("POST", PATH, headers, body, [event_id])


def _delivered(harness: Harness, event_id: str, timeout: float = 5.0) -> bool:
    async def wait() -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if event_id in harness.receiver.ids:
                return True
            await asyncio.sleep(0.05)
        return False

    result: bool = harness.run(wait(), timeout + 5)
    return result


STRUCTURED = [("Content-Type", b"application/cloudevents+json")]


@pytest.mark.parametrize(("case", "request_"), [
    # defect 12: Content-Encoding that does not match the body
    ("gzip on a body that is not gzip", Request("POST", PATH, [*STRUCTURED, ("Content-Encoding", b"gzip")], b"{}")),
    ("deflate on a body that is not deflate",
     Request("POST", PATH, [*STRUCTURED, ("Content-Encoding", b"deflate")], b"{}")),
    ("gzip on an empty batch", Request("POST", PATH, [("Content-Type", b"application/cloudevents-batch+json"),
                                                      ("Content-Encoding", b"gzip")], b"[]")),
    # defect 12: 0.3 with datacontentencoding base64 and data that is not base64
    ("0.3 structured, invalid base64", Request("POST", PATH, STRUCTURED, orjson.dumps(
        {"specversion": "0.3", "id": "d12-a", "source": "/fuzz", "type": "t", "datacontentencoding": "base64",
         "data": "!!!"}))),
    ("0.3 binary, invalid base64", Request("POST", PATH, [
        ("ce-specversion", b"0.3"), ("ce-id", b"d12-b"), ("ce-source", b"/fuzz"), ("ce-type", b"t"),
        ("ce-datacontentencoding", b"base64"), ("Content-Type", b"text/plain")], b"!!!")),
    # defect 12: data nested deeper than orjson's limit
    ("data nested 2000 deep", Request("POST", PATH, STRUCTURED, b'{"specversion":"1.0","id":"d12-c","source":"/f",'
                                      b'"type":"t","data":' + b"[" * 2000 + b"]" * 2000 + b"}")),
])
def test_a_malformed_request_is_a_400_with_a_reason(ingress_harness: Harness, case: str, request_: Request) -> None:
    response = _send(ingress_harness, request_)
    assert response.status == 400, f"{case}: {response.status} {response.body[:200]!r}"
    assert b"reason" in response.body


@pytest.mark.parametrize(("case", "request_"), [
    # defect 7: a structured attribute name ending in a newline (the name regex's `$` admits it)
    ("extension name ending in \\n", Request("POST", PATH, STRUCTURED, orjson.dumps(
        {"specversion": "1.0", "id": "d7-a", "source": "/fuzz", "type": "t", "data": {}, "x\n": "y"}), ["d7-a"])),
    # defect 7: non-UTF-8 bytes in a ce- value and in Content-Type
    ("non-UTF-8 ce- extension", _binary("d7-b", ("ce-ext", b"\xff\xfe"))),
    ("non-UTF-8 ce-type", Request("POST", PATH, [("ce-specversion", b"1.0"), ("ce-id", b"d7-c"),
                                                 ("ce-source", b"/fuzz"), ("ce-type", b"t\xc3\x28")], b"{}",
                                  ["d7-c"])),
    ("non-UTF-8 Content-Type", Request("POST", PATH, [("ce-specversion", b"1.0"), ("ce-id", b"d7-d"),
                                                      ("ce-source", b"/fuzz"), ("ce-type", b"t"),
                                                      ("Content-Type", b"text/\xff")], b"x", ["d7-d"])),
    # found by the long run after issue 9's fixes: a Content-Type parameter Python's email parser cannot
    # read (IndexError inside aiohttp's request.content_type) was a 500
    ("unparsable Content-Type parameter", _binary("d12-d", body=b"{}", content_type=b"text/plain;P*")),
])
def test_an_event_answered_202_reaches_the_trigger(ingress_harness: Harness, case: str, request_: Request) -> None:
    response = _send(ingress_harness, request_)
    assert response.status < 500, f"{case}: {response.status}"
    if response.status == 202:
        assert _delivered(ingress_harness, request_.tracked[0]), f"{case}: answered 202, never delivered"


def test_metrics_answer_200_after_an_event_with_a_non_utf8_type(ingress_harness: Harness) -> None:
    """Defect 2: one 202'd event whose ce-type holds a surrogate-escaped byte made /metrics 500 for good."""
    request = Request("POST", PATH, [("ce-specversion", b"1.0"), ("ce-id", b"d2"), ("ce-source", b"/fuzz"),
                                     ("ce-type", b"type-\xff"), ("Content-Type", b"application/json")], b"{}")
    _send(ingress_harness, request)
    assert harness_metrics(ingress_harness).status == 200


def harness_metrics(harness: Harness) -> Any:
    return harness.run(metrics(harness.stack))


def test_metrics_stay_bounded_however_many_types_and_paths(ingress_harness: Harness) -> None:
    """Defect 1: every distinct ce-type and every unknown path became a label, never freed."""
    host, port = ingress_harness.stack.ingress.removeprefix("http://").split(":")
    client = Client(host, int(port))
    sizes = []
    # What this flood adds is what the defect was: /metrics is the process's, and in a whole-suite run it
    # also holds the series of every stack an earlier test ran (prometheus_client's registry is global).
    baseline = harness_metrics(ingress_harness).size
    try:
        for round_ in range(2):
            for i in range(600):
                typed = _binary(f"d1-{round_}-{i}")
                typed.headers[3] = ("ce-type", f"type-{round_}-{i}".encode())
                ingress_harness.run(client.send(typed))
                ingress_harness.run(client.send(Request("POST", f"/fuzz/nobroker{round_}-{i}", [], b"{}")))
            sizes.append(harness_metrics(ingress_harness).size)
    finally:
        ingress_harness.run(client.close())
    assert sizes[0] - baseline <= METRICS_BOUND, \
        f"/metrics grew from {baseline} to {sizes[0]} bytes with 600 types and 600 unknown paths"
    # Past the cap, 600 more new types and paths add (next to) nothing: the growth is bounded, not slow.
    assert sizes[1] - sizes[0] <= 64 * 1024, f"/metrics grew from {sizes[0]} to {sizes[1]} bytes"


def _nest(depth: int) -> Any:
    value: Any = {"x": 1}
    for _ in range(depth):
        value = [value]
    return value


CONTROL_CASES: list[tuple[str, dict[str, Any], int]] = [
    # defect 13: huge durations, wrong JSON types, deep nesting, deep CESQL
    ("backoffDelay P9999999999D", {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                   "metadata": {"name": "d13a", "namespace": "fz"},
                                   "spec": {"delivery": {"retry": 1, "backoffDelay": "P9999999999D"}}}, 400),
    ("metadata a list", {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": []}, 400),
    ("spec a list", {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                     "metadata": {"name": "d13b", "namespace": "fz"}, "spec": []}, 400),
    ("spec nested 300 deep", {"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": "d13c", "namespace": "fz"},
                              "spec": _nest(300)}, 400),
    ("CESQL NOT x 1000", {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                          "metadata": {"name": "d13d", "namespace": "fz"},
                          "spec": {"broker": "b", "subscriber": {"uri": "http://127.0.0.1:9/"},
                                   "filters": [{"cesql": "NOT " * 1000 + "TRUE"}]}}, 200),
    # NOT NOT ... is a flat chain too (one loop in the compiler, not nesting), and so is this: both are
    # valid CESQL, parsed iteratively and accepted
    ("CESQL 1000 ORs", {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                        "metadata": {"name": "d13e", "namespace": "fz"},
                        "spec": {"broker": "b", "subscriber": {"uri": "http://127.0.0.1:9/"},
                                 "filters": [{"cesql": " OR ".join(["type = 'a'"] * 1000)}]}}, 200),
    # defect 14: a trailing newline passes the name patterns
    ("name default\\n", {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                         "metadata": {"name": "default\n", "namespace": "fz"}}, 400),
    ("namespace fz\\n", {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                         "metadata": {"name": "d14", "namespace": "fz\n"}}, 400),
    ("spec.broker b\\n", {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                          "metadata": {"name": "d14b", "namespace": "fz"},
                          "spec": {"broker": "b\n", "subscriber": {"uri": "http://127.0.0.1:9/"}}}, 400),
    ("filter key type\\n", {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                            "metadata": {"name": "d14c", "namespace": "fz"},
                            "spec": {"broker": "b", "subscriber": {"uri": "http://127.0.0.1:9/"},
                                     "filter": {"attributes": {"type\n": "a"}}}}, 400),
]


@pytest.mark.parametrize(("case", "manifest", "status"), CONTROL_CASES, ids=[c[0] for c in CONTROL_CASES])
def test_a_manifest_is_refused_with_a_400_or_applied(control_harness: Harness, case: str, manifest: dict[str, Any],
                                                     status: int) -> None:
    stack = control_harness.stack

    async def post() -> tuple[int, bytes]:
        async with stack.session.post(f"{stack.api}/api/v1/apply", data=_dumps({"items": [manifest]}),
                                      headers={"Content-Type": "application/json"}) as response:
            return response.status, await response.read()

    got, body = control_harness.run(post())
    assert got == status, f"{case}: {got} {body[:300]!r}"
    if status == 400:
        assert b'"field"' in body, f"{case}: the refusal names no field: {body[:300]!r}"
