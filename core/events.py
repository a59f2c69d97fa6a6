"""The CloudEvent as Nerve carries it, and its HTTP binding (binary, structured, batch).

Nerve keeps an event as a validated attribute dict plus the body bytes, untouched. Binary mode in,
binary mode stored, binary mode out is then a header mapping plus validation: the cloudevents SDK
costs tens of microseconds per conversion (DESIGN.md, performance notes), which would dominate the
CPU at thousands of events per second. The structured and batch modes parse JSON here with orjson and
keep the `data` member's bytes exactly as written (msgspec finds their span); a subscriber gets those
bytes as the binary body or embedded as they are in structured mode. tests/unit/test_events_sdk.py
proves with hypothesis that this module and the SDK agree.

The HTTP binding as Nerve applies it, both ways: `datacontenttype` is `Content-Type` verbatim (only `ce-`
values are percent-encoded), an event without it has no Content-Type, and a header value that is not
UTF-8 text is InvalidEvent naming the attribute (a 400 at the edge, never stored).

Attribute values keep the CloudEvents type they arrived with: `str` for String, URI, URI-reference
and Timestamp (RFC 3339 text), `int` for Integer and `bool` for Boolean. Binary-mode headers carry
only strings, so an extension sent as `ce-count: 5` is the string "5", as in every SDK.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, unquote

import msgspec
import orjson

from core.errors import InvalidEvent
from core.kept import Kept

AttrValue = str | int | bool

SPECVERSIONS: Final = frozenset({"1.0", "0.3"})
REQUIRED: Final = ("id", "source", "specversion", "type")
CE_HEADER_PREFIX: Final = "ce-"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"

# Every pattern here is used with fullmatch: `$` also matches before a trailing newline, and a name or
# value ending in "\n" passed validation, answered 202 and could then never be sent as an HTTP header.
_NAME = re.compile(r"[a-z0-9]+")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))"
)
_MEDIA_TYPE = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+[ \t]*(;.*)?", re.ASCII | re.DOTALL)
# The Content-Type goes on the wire exactly as stored, so it may hold only what an HTTP field value
# can: visible US-ASCII, space and tab (RFC 9110 5.5 without obs-text; media types are ASCII anyway).
_FIELD_VALUE = re.compile(r"[\x20-\x7e\t]*")
# aiohttp's request parsers (the C one and the pure-Python one alike) decode header bytes as UTF-8 with
# errors="surrogateescape": raw bytes that are not UTF-8 arrive as lone surrogates U+DC80..U+DCFF.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_QUOTED_PAIR = re.compile(r"\\(.)")
_JSON_MEDIA = re.compile(r"(application|text)/([\w.-]+\+)?json(\s*;.*)?", re.IGNORECASE | re.DOTALL)
_INT32 = (-(2**31), 2**31 - 1)
# CloudEvents HTTP binding: space, double quote, percent and anything outside printable ASCII are
# percent-encoded in header values; everything else goes as it is.
_HEADER_SAFE_STR = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_HEADER_SAFE = frozenset(_HEADER_SAFE_STR)
# Attributes whose value, when present, must be a non-empty string (v1.0 core attributes).
_NON_EMPTY_OPTIONAL: Final = ("datacontenttype", "dataschema", "subject", "schemaurl")


@dataclass(slots=True)
class Event:
    """One CloudEvent: every context attribute and extension in `attributes`, the payload in `data`.

    `data` is None when the event has no data at all, and bytes (possibly empty) otherwise; it is never
    re-encoded on the binary path.
    """

    attributes: dict[str, AttrValue]
    data: bytes | None = None
    # Transport headers that Knative passes through hops (x-request-id, knative-*, x-b3-*, traceparent).
    headers: dict[str, str] = field(default_factory=dict)
    # Made once for every Trigger that delivers this event, instead of once per Trigger (with 10 Triggers
    # the copy and the encoding were about a tenth of the dispatcher's CPU, docs/performance.md). Not part
    # of the event: not compared, not copied. An event is not changed once it has them.
    subscriber_form: tuple[Event, int | None] | None = field(default=None, compare=False, repr=False)
    """core.hops.for_subscriber: this event as a Broker's subscribers get it (its TTL taken off), and the TTL."""
    binary_lines: bytes | None = field(default=None, compare=False, repr=False)
    """core.delivery.sender: the binary-mode header lines (`ce-*`, Content-Type, pass-through headers)."""

    @property
    def id(self) -> str:
        return str(self.attributes["id"])

    @property
    def source(self) -> str:
        return str(self.attributes["source"])

    @property
    def type(self) -> str:
        return str(self.attributes["type"])

    @property
    def content_type(self) -> str | None:
        value = self.attributes.get("datacontenttype")
        return None if value is None else str(value)

    def copy(self) -> Event:
        return Event(dict(self.attributes), self.data, dict(self.headers))


def is_json_media_type(content_type: str | None) -> bool:
    """JSON-ish data is embedded as JSON in structured mode; a missing type means JSON (CE JSON format)."""
    return content_type is None or _JSON_MEDIA.fullmatch(content_type) is not None


def attr_to_string(value: AttrValue) -> str:
    """The canonical CloudEvents string form of an attribute value (Boolean as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------------------------- validation


def _valid_timestamp(text: str) -> bool:
    m = _RFC3339.fullmatch(text)
    if m is None:
        return False
    if m.group(9) is not None and (int(m.group(10)) > 23 or int(m.group(11)) > 59):
        return False
    # fromisoformat checks the calendar (month 13, Feb 30); it takes at most microseconds.
    fraction = (m.group(7) or "")[:7]
    try:
        datetime.fromisoformat(f"{m.group(1)}-{m.group(2)}-{m.group(3)}T{m.group(4)}:{m.group(5)}:{m.group(6)}"
                               f"{fraction}+00:00")
    except ValueError:
        return False
    return True


_KEPT_MAX = 4096
"""Entries in each of this module's tables (core/kept.py); past that, names are checked every time."""
_KEPT_TEXT_MAX = 256
"""Nor is a text longer than this kept."""
_VALID_NAMES: Kept[None] = Kept(_KEPT_MAX, _KEPT_TEXT_MAX)
_VALID_CONTENT_TYPES: Kept[None] = Kept(_KEPT_MAX, _KEPT_TEXT_MAX)
"""Attribute names and content types `validate` found good: the same few come with every event, so each is
matched against its pattern once (the regular expressions were a fifth of validate's cost per event)."""


def validate(attributes: Mapping[str, AttrValue]) -> None:
    """Raise InvalidEvent naming the attribute when the context breaks the CloudEvents 1.0/0.3 rules."""
    specversion = attributes.get("specversion")
    if specversion is None or specversion == "":
        raise InvalidEvent("missing required attribute 'specversion'", field="specversion")
    if specversion not in SPECVERSIONS:
        raise InvalidEvent(f"unsupported specversion {specversion!r}; expected 1.0 or 0.3", field="specversion")
    for name in ("id", "source", "type"):
        value = attributes.get(name)
        if value is None:
            raise InvalidEvent(f"missing required attribute {name!r}", field=name)
        if not isinstance(value, str):
            raise InvalidEvent(f"attribute {name!r} must be a string", field=name)
        if value == "":
            raise InvalidEvent(f"attribute {name!r} must not be empty", field=name)
    for name in _NON_EMPTY_OPTIONAL:
        value = attributes.get(name)
        if value is not None and (not isinstance(value, str) or value == ""):
            raise InvalidEvent(f"attribute {name!r} must be a non-empty string", field=name)
    content_type = attributes.get("datacontenttype")
    if isinstance(content_type, str) and content_type not in _VALID_CONTENT_TYPES:
        if _FIELD_VALUE.fullmatch(content_type) is None:
            raise InvalidEvent(f"datacontenttype {content_type!r} must be printable US-ASCII: it is sent as the "
                               "HTTP Content-Type as it is", field="datacontenttype")
        if _MEDIA_TYPE.fullmatch(content_type) is None:
            raise InvalidEvent(f"datacontenttype {content_type!r} is not an RFC 2046 media type",
                               field="datacontenttype")
        _VALID_CONTENT_TYPES.keep(content_type, None)
    time = attributes.get("time")
    if time is not None and (not isinstance(time, str) or not _valid_timestamp(time)):
        raise InvalidEvent(f"time {time!r} is not an RFC 3339 timestamp", field="time")
    for name, value in attributes.items():
        if name not in _VALID_NAMES:
            if _NAME.fullmatch(name) is None:
                raise InvalidEvent(f"attribute name {name!r} must be lower-case letters and digits", field=name)
            _VALID_NAMES.keep(name, None)
        if isinstance(value, (bool, str)):
            continue
        if isinstance(value, int):
            if not _INT32[0] <= value <= _INT32[1]:
                raise InvalidEvent(f"attribute {name!r} is outside the 32-bit Integer range", field=name)
            continue
        raise InvalidEvent(f"attribute {name!r} must be a string, integer or boolean", field=name)


# --------------------------------------------------------------------------------------------- binary mode


def header_text(name: str, value: str) -> str:
    """The attribute value of one `ce-` header as aiohttp decoded it; InvalidEvent naming `name` if it is not text.

    HTTP binding 3.1.3.2: senders MUST percent-encode what is not printable US-ASCII, and on decoding
    "values that have been unnecessarily percent-encoded MUST be accepted, but encoded byte sequences
    which are invalid in UTF-8 MUST be rejected" (so `bad%FFutf8` and the overlong `%C0%A0` are a 400).
    Raw bytes above 0x7F break the sender's MUST. We accept them when they are valid UTF-8 (that is the
    only reading the spec's UTF-8 string type allows, and it is what aiohttp already decoded), and refuse
    any other raw byte: guessing Latin-1 (what Node's http and Python's http.client put on the wire for
    `subject: café`) would store a value the producer may not have meant, and storing the byte as it is
    cannot be written to Kafka, NATS or a subscriber again.
    """
    if not value.isascii() and _ESCAPED_BYTE.search(value) is not None:
        raise InvalidEvent(f"header ce-{name} carries raw bytes that are not UTF-8; percent-encode the UTF-8 "
                           "bytes of the value (HTTP binding 3.1.3.2)", field=name)
    if value[:1] == '"' and len(value) >= 2 and value[-1] == '"':
        # "Any HTTP header value MUST have quoted string escaping [...] applied in reverse, and then a
        # single round of percent-decoding": older senders quoted values with spaces instead.
        value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
    if "%" not in value:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise InvalidEvent(f"header ce-{name} percent-encodes bytes that are not valid UTF-8 "
                           "(HTTP binding 3.1.3.2: they MUST be rejected)", field=name) from None


_CONTENT_TYPE: Final = "Content-Type"
"""What `Content-Type` carries in `_ATTRIBUTE_OF` (no attribute name has capitals): `datacontenttype`, as it is."""
_ATTRIBUTE_OF: Kept[str] = Kept(_KEPT_MAX, _KEPT_TEXT_MAX)
"""Header name as sent -> the attribute its `ce-` header carries, _CONTENT_TYPE, or "" for none. A producer
sends the same header names request after request, so each is lowered and matched once, not per request."""


def _attribute_of(name: str) -> str:
    lower = name.lower()
    if lower.startswith(CE_HEADER_PREFIX):
        attribute = lower[3:]
    elif lower == "content-type":
        attribute = _CONTENT_TYPE
    else:
        attribute = ""
    _ATTRIBUTE_OF.keep(name, attribute)
    return attribute


def from_binary(headers: Iterable[tuple[str, str]], body: bytes) -> Event:
    """An event from binary-mode headers (any iterable of name/value pairs) and the body bytes.

    `Content-Type` is `datacontenttype` exactly as it is: the binding percent-encodes `ce-` headers only.
    """
    return _from_binary(headers, body, needs_specversion=False)


def _from_binary(headers: Iterable[tuple[str, str]], body: bytes, *, needs_specversion: bool) -> Event:
    """from_binary; with `needs_specversion` a request without a `ce-specversion` header is refused as not
    a CloudEvent before any value is read (from_http's first check), in the same one pass over the headers."""
    carried: list[tuple[str, str]] = []
    attribute_of = _ATTRIBUTE_OF
    for name, value in headers:
        attribute = attribute_of.get(name)
        if attribute is None:
            attribute = _attribute_of(name)
        if attribute:
            carried.append((attribute, value))
    if needs_specversion and not any(attribute == "specversion" for attribute, _ in carried):
        raise InvalidEvent(
            "not a CloudEvent: no ce-specversion header (binary mode) and Content-Type is not "
            f"{STRUCTURED_CONTENT_TYPE} (structured mode)",
            field="specversion",
        )
    # In the order the headers came: the attributes keep it (and so do the Kafka record's headers).
    attributes: dict[str, AttrValue] = {}
    for attribute, value in carried:
        if attribute == _CONTENT_TYPE:
            attributes["datacontenttype"] = value
        else:
            attributes[attribute] = header_text(attribute, value)
    validate(attributes)
    if attributes.get("datacontentencoding") == "base64" and attributes["specversion"] == "0.3":
        # The body stays as sent (base64 text), but one that is not base64 is refused now: every
        # subscriber that honours the 0.3 attribute would fail to decode it.
        try:
            base64.b64decode(body, validate=True)
        except ValueError:
            raise InvalidEvent("datacontentencoding is base64 but the body is not valid base64",
                               field="data") from None
    return Event(attributes, body if body or "datacontenttype" in attributes else None)


def to_binary(event: Event) -> tuple[dict[str, str], bytes]:
    """Binary-mode headers and body: `ce-` values percent-encoded where HTTP needs it, Content-Type as it is.

    An event without `datacontenttype` gets no Content-Type: whoever sends the body must not add one.
    """
    headers: dict[str, str] = {}
    for name, value in event.attributes.items():
        text = attr_to_string(value)
        if name == "datacontenttype":
            headers["Content-Type"] = text
            continue
        if not _HEADER_SAFE.issuperset(text):
            text = quote(text, safe=_HEADER_SAFE_STR)
        headers["ce-" + name] = text
    return headers, event.data or b""


# --------------------------------------------------------------------------------------------- structured mode


class _DataSpan(msgspec.Struct):
    """The top-level `data` member of a JSON-format event, as the bytes it was written with."""

    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


# Structured mode keeps the `data` member's bytes exactly (big integers, `1E2`, `\u2028` escapes,
# whitespace): parsing them into Python values and dumping them again would change them, and orjson
# turns integers over 64 bits into floats. orjson gives no byte spans; msgspec's `Raw` is exactly the
# span of a member's value, found by its C decoder while it skips everything else. orjson still parses
# the whole document first: it is the validator (UTF-8, syntax) and reads the attributes. Measured on
# this machine for a 341-byte event: orjson.loads 1.2 µs, the span decode 0.5 µs, from_structured 12 µs
# in all (validation dominates). A hand-written span scanner in Python would cost more than both.
_DATA_SPAN = msgspec.json.Decoder(_DataSpan)
_BATCH_SPANS = msgspec.json.Decoder(list[_DataSpan])


def _from_json_object(obj: Any, raw_data: bytes | None) -> Event:
    if not isinstance(obj, dict):
        raise InvalidEvent("a structured CloudEvent must be a JSON object")
    attributes: dict[str, AttrValue] = {}
    for name, value in obj.items():
        if name in ("data", "data_base64") or value is None:
            continue
        if isinstance(value, (float, dict, list)):
            raise InvalidEvent(f"attribute {name!r} must be a string, integer or boolean", field=name)
        attributes[name] = value
    validate(attributes)
    has_data, has_b64 = obj.get("data") is not None, obj.get("data_base64") is not None
    if has_data and has_b64:
        raise InvalidEvent("an event must not carry both 'data' and 'data_base64'", field="data_base64")
    data: bytes | None = None
    if has_b64:
        raw = obj["data_base64"]
        if not isinstance(raw, str):
            raise InvalidEvent("data_base64 must be a base64 string", field="data_base64")
        try:
            data = base64.b64decode(raw, validate=True)
        except ValueError as exc:
            raise InvalidEvent(f"data_base64 is not valid base64: {exc}", field="data_base64") from None
    elif has_data:
        value = obj["data"]
        content_type = attributes.get("datacontenttype")
        encoding = attributes.get("datacontentencoding")
        if attributes["specversion"] == "0.3" and encoding == "base64" and isinstance(value, str):
            try:
                data = base64.b64decode(value, validate=True)
            except ValueError as exc:
                raise InvalidEvent(f"data is not valid base64 (datacontentencoding: base64): {exc}",
                                   field="data") from None
            del attributes["datacontentencoding"]
        elif isinstance(value, str) and not is_json_media_type(str(content_type) if content_type else None):
            # JSON format 3.1.1: with a non-JSON type a string `data` is the data itself (text).
            data = value.encode()
        else:
            # JSON data (a JSON string included: `"abc"` stays the JSON value "abc") is its own bytes.
            data = raw_data if raw_data is not None else orjson.dumps(value)
    return Event(attributes, data)


def _raw(span: _DataSpan) -> bytes | None:
    return None if isinstance(span.data, msgspec.UnsetType) else bytes(span.data)


def _spans(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """The decoded spans; InvalidEvent where data is nested deeper than the decoder follows.

    msgspec recurses within Python's recursion limit (about 950 levels here; orjson parses 1024 but
    serializes only 254, so deeper data used to be a 500 on its way out). Such data is refused plainly.
    """
    try:
        return decoder.decode(body)
    except RecursionError:
        raise InvalidEvent("data is nested too deeply to be kept exactly", field="data") from None


def from_structured(body: bytes) -> Event:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"structured CloudEvent is not valid JSON: {exc}") from None
    raw_data = _raw(_spans(_DATA_SPAN, body)) if isinstance(obj, dict) and "data" in obj else None
    return _from_json_object(obj, raw_data)


def from_batch(body: bytes) -> list[Event]:
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"CloudEvents batch is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise InvalidEvent("a CloudEvents batch must be a JSON array")
    for index, item in enumerate(items):
        # Refused before any span is read: the spans decoder takes only a list of objects.
        if not isinstance(item, dict):
            raise InvalidEvent(f"batch[{index}]: a structured CloudEvent must be a JSON object", field=f"[{index}]")
    spans = [_raw(span) for span in _spans(_BATCH_SPANS, body)] if items else []
    events = []
    for index, item in enumerate(items):
        try:
            events.append(_from_json_object(item, spans[index]))
        except InvalidEvent as exc:
            raise InvalidEvent(f"batch[{index}]: {exc.reason}", field=f"[{index}].{exc.field or ''}") from None
    return events


def to_json_object(event: Event) -> dict[str, Any]:
    """The JSON-format object of an event: JSON data embedded, text as a string, other bytes as base64."""
    obj: dict[str, Any] = dict(event.attributes)
    data = event.data
    if data is None:
        return obj
    content_type = event.content_type
    if is_json_media_type(content_type):
        if _is_json(data):
            # Embed the stored bytes as they are: no parse-and-dump round trip per delivery.
            obj["data"] = orjson.Fragment(data)
            return obj
    elif content_type is not None and (content_type.startswith("text/") or "xml" in content_type):
        try:
            obj["data"] = data.decode()
            return obj
        except UnicodeDecodeError:
            pass
    if event.attributes.get("specversion") == "0.3":
        obj["datacontentencoding"] = "base64"
        obj["data"] = base64.b64encode(data).decode()
    else:
        obj["data_base64"] = base64.b64encode(data).decode()
    return obj


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def to_structured(event: Event) -> bytes:
    return orjson.dumps(to_json_object(event))


# --------------------------------------------------------------------------------------------- HTTP


def from_http(content_type: str | None, headers: Iterable[tuple[str, str]], body: bytes) -> list[Event]:
    """Every event of one HTTP request, whichever content mode it uses; raises InvalidEvent otherwise."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == STRUCTURED_CONTENT_TYPE:
        return [from_structured(body)]
    if media == BATCH_CONTENT_TYPE:
        return from_batch(body)
    return [_from_binary(headers, body, needs_specversion=True)]


def is_cloudevent_response(content_type: str | None, headers: Mapping[str, str]) -> bool:
    """Whether an HTTP response carries a CloudEvent (a reply), in either mode."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == STRUCTURED_CONTENT_TYPE:
        return True
    return any(name.lower() == "ce-specversion" for name in headers)
