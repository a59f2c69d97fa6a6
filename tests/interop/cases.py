"""The events the SDK producers send, and a reference reading of the HTTP requests they put on the wire.

A case is an event spec (attributes, extensions, data bytes) that every producer program reads from stdin.
What the test expects a subscriber to get is not the spec but what the producer's SDK actually sent: each
SDK serializes in its own way (the JS SDK adds `Content-Type: application/json; charset=utf-8`, Go
compacts embedded JSON, JS turns JSON numbers into doubles), and Nerve's job is to pass that on exactly.
`read_request` below is that reference reading, written from the CloudEvents HTTP binding and JSON format
specs, independent of Nerve's code and of the SDKs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

TIME = "2024-01-02T03:04:05.678Z"
JSON_MEDIA = ("application/json", "text/json")


@dataclass(frozen=True)
class Case:
    name: str
    datacontenttype: str | None = None
    data: bytes | None = None
    data_json: bool = False  # the data is JSON text (a structured-mode producer embeds it as a JSON value)
    subject: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def non_ascii(self) -> bool:
        values = [self.subject or "", *self.extensions.values()]
        return any(not v.isascii() for v in values)

    def spec(self, event_id: str, specversion: str) -> dict[str, Any]:
        """The JSON the producer programs read (tests/interop/{js,go}/producer.*, sdk.py for Python)."""
        out: dict[str, Any] = {
            "specversion": specversion, "id": event_id, "source": "/nerve/interop", "type": "dev.nerve.interop",
            "time": TIME, "extensions": dict(self.extensions), "data_json": self.data_json,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        if self.datacontenttype is not None:
            out["datacontenttype"] = self.datacontenttype
        if self.data is not None:
            out["data_b64"] = base64.b64encode(self.data).decode()
        return out


# Whitespace, a number beyond 64 bits, an exponent and an escaped U+2028: none survive a parse-and-dump.
EXACT_JSON = b'{ "big" : 123456789012345678901234567890,\n  "exp": 1E2, "sep": "a\\u2028b",  "list": [ 1 , 2.50 ] }'

CASES = [
    Case("json_exact", "application/json", EXACT_JSON, data_json=True, extensions={"tenant": "acme"}),
    Case("json_charset", "application/json; charset=utf-8", b'{"msg": "charset"}', data_json=True),
    Case("json_untyped", None, b'{"msg":"no datacontenttype"}', data_json=True),
    Case("unicode", "text/plain; charset=utf-8", "café ☕".encode(), subject="café", extensions={"place": "café"}),
    Case("no_data"),
    Case("empty_data", "text/plain", b""),
    Case("octets", "application/octet-stream", b"\x00\xff\xfe\x80nerve\xc3(\n"),
]
BY_NAME = {c.name: c for c in CASES}


@dataclass(frozen=True)
class WireEvent:
    """One event as a request carried it: attributes (extensions included) as strings, and the data bytes."""

    attributes: dict[str, str]
    data: bytes | None


def _json_members(text: str) -> dict[str, tuple[Any, str]]:
    """Top-level members of a JSON object with each value's exact source text (for data kept byte for byte)."""
    decoder = json.JSONDecoder()
    members: dict[str, tuple[Any, str]] = {}
    i = _skip(text, 0)
    if text[i] != "{":
        raise ValueError("not a JSON object")
    i = _skip(text, i + 1)
    if text[i] == "}":
        return members
    while True:
        key, i = decoder.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] != ":":
            raise ValueError("expected ':'")
        start = _skip(text, i + 1)
        value, end = decoder.raw_decode(text, start)
        members[key] = (value, text[start:end])
        i = _skip(text, end)
        if text[i] == "}":
            return members
        if text[i] != ",":
            raise ValueError("expected ','")
        i = _skip(text, i + 1)


def _skip(text: str, i: int) -> int:
    while text[i] in " \t\r\n":
        i += 1
    return i


def _split_array(text: str) -> list[str]:
    """The exact source text of each element of a top-level JSON array."""
    decoder = json.JSONDecoder()
    i = _skip(text, 0)
    if text[i] != "[":
        raise ValueError("not a JSON array")
    i = _skip(text, i + 1)
    items: list[str] = []
    if text[i] == "]":
        return items
    while True:
        _, end = decoder.raw_decode(text, i)
        items.append(text[i:end])
        i = _skip(text, end)
        if text[i] == "]":
            return items
        if text[i] != ",":
            raise ValueError("expected ','")
        i = _skip(text, i + 1)


def is_json_media(content_type: str | None) -> bool:
    if content_type is None:
        return True  # the JSON format: no datacontenttype means JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_MEDIA or media.endswith("+json")


def read_json_event(text: str) -> WireEvent:
    """An event in the JSON format: `data` kept as its source bytes when it is JSON, base64 decoded otherwise."""
    members = _json_members(text)
    attributes = {k: _attr(v) for k, (v, _) in members.items() if k not in ("data", "data_base64") and v is not None}
    data: bytes | None = None
    if "data_base64" in members and members["data_base64"][0] is not None:
        data = base64.b64decode(members["data_base64"][0])
    elif "data" in members and members["data"][0] is not None:
        value, source = members["data"]
        if attributes.get("datacontentencoding") == "base64":  # CloudEvents 0.3
            data = base64.b64decode(value)
            del attributes["datacontentencoding"]
        elif isinstance(value, str) and not is_json_media(attributes.get("datacontenttype")):
            data = value.encode()
        else:
            data = source.encode()
    return WireEvent(attributes, data)


def _attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read_request(headers: dict[str, str], body: bytes) -> list[WireEvent]:
    """Every event of one HTTP request, in whichever content mode it was sent."""
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/cloudevents+json":
        return [read_json_event(body.decode())]
    if media == "application/cloudevents-batch+json":
        return [read_json_event(item) for item in _split_array(body.decode())]
    attributes = {name[3:]: unquote(value) for name, value in lower.items() if name.startswith("ce-")}
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    # Binary mode cannot tell "no data" from "empty data"; an empty body without a type is no data.
    data = body if body or content_type is not None else None
    return [WireEvent(attributes, data)]
