"""Hypothesis strategies for requests to the Broker ingress: every mode, every odd byte.

Requests to the tracked Broker (`/fuzz/default`) that look like events carry ids the fuzzer made unique
(`fz-<n>`), so an answer of 202 says exactly which events must reach the Trigger. Everything else about
them is drawn: types, sources, extensions (names and values, non-ASCII and percent sequences too),
Content-Type and Content-Encoding, big and deeply nested data, CloudEvents 0.3 with
`datacontentencoding`. Other requests (other paths and methods, random ids) are fuzzed for their answer
only.
"""

from __future__ import annotations

import base64
import gzip
import itertools
from typing import Any

import orjson
from hypothesis import strategies as st

from tests.fuzz.rawhttp import Request

TRACKED_PATH = "/fuzz/default"
_ids = itertools.count()


def _token() -> str:
    return f"fz-{next(_ids)}"


# Header bytes: printable ASCII mostly, then UTF-8 of any text, then raw high bytes (not UTF-8),
# percent sequences (valid and invalid UTF-8 once decoded) and tabs. CR/LF are left out: they would
# end the header line in our own request (the server's framing is not what is fuzzed here).
_ascii = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_percent = st.lists(st.sampled_from(["%20", "%25", "%0A", "%0D", "%C3%A9", "%FF", "%E2%82", "%", "%zz", "%00", "a"]),
                    max_size=8).map("".join)
header_value = st.one_of(
    _ascii.map(str.encode), _ascii.map(str.encode), _ascii.map(str.encode),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(lambda s: s.encode("utf-8")),
    st.binary(max_size=20).map(lambda b: bytes(c for c in b if c not in (10, 13))),
    _percent.map(str.encode),
)
attr_name = st.one_of(
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"), min_size=1, max_size=12),
)

CONTENT_TYPES = [
    None, "application/json", "application/json; charset=utf-8", "text/plain", "application/xml",
    "application/octet-stream", "application/cloudevents+json", "application/cloudevents-batch+json",
    "application/cloudevents+json; charset=utf-8", "application/cloudevents+jsonx", "multipart/form-data",
    "", ";", "application/json; charset=", "APPLICATION/CLOUDEVENTS+JSON", "application/*",
]
_known_type = st.sampled_from(CONTENT_TYPES).map(lambda c: None if c is None else c.encode())
content_type = st.one_of(_known_type, _known_type, _known_type, header_value)

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
                        st.text(max_size=20))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """Nesting around and past orjson's limit of 1024 (and past what recursion survives)."""
    depth = draw(st.sampled_from([10, 254, 255, 256, 500, 1023, 1024, 1025, 2000, 5000]))
    kind = draw(st.sampled_from(["list", "dict"]))
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@st.composite
def big_json(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([1_000, 64_000, 300_000]))
    return orjson.dumps({"blob": "x" * size, "n": draw(st.integers(0, 2**32))})


data_bytes = st.one_of(json_value.map(orjson.dumps), json_value.map(orjson.dumps), json_value.map(orjson.dumps),
                       st.binary(max_size=64), deep_json(), big_json(),
                       st.just(b""), st.sampled_from([b"{", b"\xff\xfe", b"1E400", b'"\\ud800"', b"[1,]"]))
encodings = st.one_of(st.none(), st.none(), st.none(),
                      st.sampled_from([b"gzip", b"deflate", b"br", b"identity", b"gzip, gzip", b"x"]))


def _maybe_gzip(draw: st.DrawFn, headers: list[tuple[str, bytes]], body: bytes) -> bytes:
    encoding = draw(encodings)
    if encoding is None:
        return body
    headers.append(("Content-Encoding", encoding))
    if encoding == b"gzip" and draw(st.booleans()):
        return gzip.compress(body)
    return body


@st.composite
def binary_request(draw: st.DrawFn, path: str) -> Request:
    event_id = _token()
    if draw(st.booleans()):
        # Half are plausible events with one odd part: an extension, a type, or the data.
        headers = [("ce-specversion", b"1.0"), ("ce-id", event_id.encode()), ("ce-source", b"/fuzz"),
                   ("ce-type", draw(st.one_of(st.just(b"dev.nerve.fuzz"), header_value.filter(bool)))),
                   ("Content-Type", b"application/json")]
        headers += [(f"ce-{name}", value) for name, value in draw(st.lists(
            st.tuples(st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True), header_value), max_size=2))]
        return Request("POST", path, headers, draw(data_bytes), [event_id])
    fuzz_id = draw(st.integers(0, 9)) == 0
    headers = [
        ("ce-specversion", draw(st.sampled_from([b"1.0"] * 6 + [b"0.3", b"0.3", b"2.0", b""]))),
        ("ce-id", draw(header_value) if fuzz_id else event_id.encode()),
        ("ce-source", draw(st.one_of(st.just(b"/fuzz"), header_value))),
        ("ce-type", draw(st.one_of(st.just(b"dev.nerve.fuzz"), header_value))),
    ]
    if draw(st.integers(0, 7)) == 0:
        del headers[draw(st.integers(0, 3))]
    headers += [(f"ce-{name}", value) for name, value in draw(st.lists(st.tuples(attr_name, header_value),
                                                                      max_size=4))]
    if draw(st.integers(0, 4)) == 0:
        headers.append(("ce-datacontentencoding", draw(st.sampled_from([b"base64", b"Base64", b"x"]))))
    ctype = draw(content_type)
    if ctype is not None:
        headers.append(("Content-Type", ctype))
    for name in draw(st.lists(st.sampled_from(["traceparent", "x-request-id", "knative-x", "x-b3-traceid",
                                                "Kn-Namespace", "Prefer"]), max_size=2)):
        headers.append((name, draw(header_value)))
    body = _maybe_gzip(draw, headers, draw(data_bytes))
    # A cloudevents media type makes the request structured or batch whatever its ce- headers say (HTTP
    # binding 3.1): its events, if any, are in the body (an empty batch `[]` is one, with none), so the
    # header's id is owed nothing.
    media = (ctype or b"").split(b";")[0].strip().lower()
    structured = media in (b"application/cloudevents+json", b"application/cloudevents-batch+json")
    return Request("POST", path, headers, body, [] if fuzz_id or structured else [event_id])


@st.composite
def structured_event(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    """One structured event (attributes as JSON) and its tracked id, or None when its id is fuzzed."""
    version = draw(st.sampled_from(["1.0", "1.0", "0.3", 1.0, None, "1"]))
    event_id: str | None = _token()
    event: dict[str, Any] = {"specversion": version, "id": event_id, "source": "/fuzz", "type": "dev.nerve.fuzz"}
    if draw(st.booleans()):
        event["specversion"] = "1.0"
        event["data"] = draw(json_value)
        event.update(draw(st.dictionaries(st.one_of(attr_name, attr_name.map(lambda n: n + "\n")),
                                          st.text(max_size=10), max_size=2)))
        return event, event_id
    if draw(st.integers(0, 9)) == 0:
        event["id"] = draw(json_value)
        event_id = None
    for key in ("source", "type"):
        if draw(st.integers(0, 4)) == 0:
            event[key] = draw(st.one_of(json_value, st.text(max_size=30)))
    for name, value in draw(st.lists(st.tuples(st.one_of(attr_name, attr_name.map(lambda n: n + "\n"),
                                                         st.text(max_size=10)), json_value), max_size=4)):
        event[name] = value
    choice = draw(st.sampled_from(["json", "json", "base64", "bad-base64", "deep", "none"]))
    if choice == "json":
        event["datacontenttype"] = draw(st.sampled_from(["application/json", "text/plain", "application/json\n"]))
        event["data"] = draw(json_value)
    elif choice == "base64":
        raw = draw(st.binary(max_size=64))
        if version == "0.3":
            event["datacontentencoding"] = "base64"
            event["data"] = base64.b64encode(raw).decode()
        else:
            event["data_base64"] = base64.b64encode(raw).decode()
    elif choice == "bad-base64":
        bad = draw(st.sampled_from(["!!!", "abc", "=", "a=b=", "\u00e9\u00e9", "QQ"]))
        if version == "0.3" or draw(st.booleans()):
            event["datacontentencoding"] = draw(st.sampled_from(["base64", "Base64", "binary"]))
            event["data"] = bad
        else:
            event["data_base64"] = bad
    elif choice == "deep":
        event["data"] = "__DEEP__"
        event["__deep__"] = draw(deep_json())
    return event, event_id


def _dump(event: dict[str, Any]) -> bytes:
    deep = event.pop("__deep__", None)
    body = orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS)
    return body.replace(b'"__DEEP__"', deep) if deep is not None else body


@st.composite
def structured_request(draw: st.DrawFn, path: str) -> Request:
    event, event_id = draw(structured_event())
    headers = [("Content-Type", draw(st.sampled_from([b"application/cloudevents+json",
                                                      b"application/cloudevents+json; charset=utf-8"])))]
    body = _maybe_gzip(draw, headers, _dump(event))
    return Request("POST", path, headers, body, [event_id] if event_id else [])


@st.composite
def batch_request(draw: st.DrawFn, path: str) -> Request:
    drawn = draw(st.lists(structured_event(), max_size=4))
    body = b"[" + b",".join(_dump(e) for e, _ in drawn) + b"]"
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.sampled_from([b"{}", b"[1,2]", b"[[]]", b"[", b"null", b'"x"']))
        drawn = []
    headers = [("Content-Type", b"application/cloudevents-batch+json")]
    body = _maybe_gzip(draw, headers, body)
    ids = [i for _, i in drawn if i]
    # A batch is all or nothing: a 202 means every event in it was taken.
    return Request("POST", path, headers, body, ids)


PATHS = st.one_of(
    st.just(TRACKED_PATH), st.just(TRACKED_PATH), st.just(TRACKED_PATH), st.just(TRACKED_PATH),
    st.just("/"), st.just("/fuzz"), st.just("/fuzz/default/"), st.just("/fuzz/default/extra"),
    st.from_regex(r"/[a-z0-9-]{1,12}/[a-z0-9-]{1,12}", fullmatch=True),
    _percent.map(lambda p: f"/fuzz/{p}"),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30).map(lambda s: "/" + s),
)
METHODS = st.sampled_from(["POST"] * 12 + ["GET", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "FOO"])


@st.composite
def ingress_request(draw: st.DrawFn) -> Request:
    path = draw(PATHS)
    mode = draw(st.sampled_from(["binary", "binary", "structured", "batch"]))
    builder = {"binary": binary_request, "structured": structured_request, "batch": batch_request}[mode]
    request: Request = draw(builder(path))
    request.method = draw(METHODS)
    if request.method != "POST" or path != TRACKED_PATH:
        request.tracked = []
    return request
