"""Parsing and writing CloudEvents over HTTP, against the CloudEvents project's own vectors."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import yaml

from core.errors import InvalidEvent
from core.events import (
    Event,
    from_batch,
    from_binary,
    from_http,
    from_structured,
    is_json_media_type,
    to_binary,
    to_json_object,
    to_structured,
)
from tests.support.shared import conformance

FORMAT = conformance("ce-json-format-tests")


def _cases(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((FORMAT / name).read_text())["tests"]
    return cases


@pytest.mark.parametrize("case", _cases("valid-events.json"), ids=lambda c: c["id"])
def test_valid_json_format_events_parse(case: dict[str, Any]) -> None:
    event = from_structured(json.dumps(case["event"]).encode())
    expected = {k: v for k, v in case["event"].items() if v is not None and k not in ("data", "data_base64")}
    assert event.attributes == expected
    if "data" in case["event"] and isinstance(case["event"]["data"], str):
        assert event.data == case["event"]["data"].encode()


@pytest.mark.parametrize("case", _cases("invalid-events.json"), ids=lambda c: c["id"])
def test_invalid_json_format_events_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        from_structured(json.dumps(case["event"]).encode())


@pytest.mark.parametrize("case", _cases("valid-batches.json"), ids=lambda c: c["id"])
def test_valid_batches_parse(case: dict[str, Any]) -> None:
    events = from_batch(json.dumps(case["batch"]).encode())
    assert [e.id for e in events] == [item["id"] for item in case["batch"]]


@pytest.mark.parametrize("case", _cases("invalid-batches.json"), ids=lambda c: c["id"])
def test_invalid_batches_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        from_batch(json.dumps(case["batch"]).encode())


def _text(value: Any) -> str:
    # YAML reads an unquoted timestamp as a datetime; the tool sends it as RFC 3339 text.
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _conformance_yaml() -> list[dict[str, Any]]:
    root = conformance("ce-conformance-yaml")
    docs: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize("doc", _conformance_yaml(), ids=lambda d: f"{d['ContextAttributes'].get('id')}")
def test_conformance_tool_events_round_trip_in_both_modes(doc: dict[str, Any]) -> None:
    ctx = {k: _text(v) for k, v in doc["ContextAttributes"].items() if k != "Extensions" and v is not None}
    ext = {k: _text(v) for k, v in (doc["ContextAttributes"].get("Extensions") or {}).items()}
    data = doc.get("Data")
    headers = [(f"ce-{k}", v) for k, v in {**ctx, **ext}.items() if k != "datacontenttype"]
    if "datacontenttype" in ctx:
        headers.append(("Content-Type", ctx["datacontenttype"]))
    event = from_binary(headers, data.encode() if data else b"")
    assert event.attributes == {**ctx, **ext}
    again = from_structured(to_structured(event))
    assert again.attributes == event.attributes
    if data and is_json_media_type(event.content_type):
        assert json.loads(again.data or b"") == json.loads(data)
    elif data:
        assert again.data == data.encode()


def test_binary_mode_maps_headers_and_keeps_the_body_untouched() -> None:
    body = b'{"msg":"Hello Knative!"}'
    event = from_http("application/json", [
        ("Ce-Id", "say-hello"), ("Ce-Specversion", "1.0"), ("Ce-Type", "greeting"), ("Ce-Source", "not-sendoff"),
        ("Content-Type", "application/json"), ("User-Agent", "curl"),
    ], body)[0]
    assert event.attributes == {"id": "say-hello", "specversion": "1.0", "type": "greeting",
                                "source": "not-sendoff", "datacontenttype": "application/json"}
    assert event.data is body


def test_header_values_are_percent_encoded_both_ways() -> None:
    event = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t",
                   "subject": 'caf\u00e9 "100%" done'}, b"")
    headers, _ = to_binary(event)
    assert headers["ce-subject"] == "caf%C3%A9%20%22100%25%22%20done"
    assert from_binary(headers.items(), b"").attributes["subject"] == 'caf\u00e9 "100%" done'


@pytest.mark.parametrize(("headers", "field"), [
    ([("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")], "specversion"),
    ([("ce-specversion", "0.2"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")], "specversion"),
    ([("ce-specversion", "1.0"), ("ce-source", "/s"), ("ce-type", "t")], "id"),
    ([("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-type", "t")], "source"),
    ([("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s")], "type"),
    ([("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t"), ("ce-time", "noon")], "time"),
])
def test_invalid_binary_events_name_the_attribute(headers: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        from_http(None, headers, b"")
    assert err.value.field == field
    assert err.value.status == 400


def test_a_request_that_is_no_cloudevent_says_so() -> None:
    with pytest.raises(InvalidEvent, match="no ce-specversion header"):
        from_http("application/json", [("Content-Type", "application/json")], b"{}")


def test_v03_events_are_accepted_and_keep_their_version() -> None:
    event = from_http(None, [("ce-specversion", "0.3"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")], b"")[0]
    assert event.attributes["specversion"] == "0.3"


def test_structured_output_embeds_json_and_base64s_binary_data() -> None:
    base = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
    assert "data_base64" not in to_json_object(Event({**base, "datacontenttype": "application/json"}, b'[1, 2]'))
    assert json.loads(to_structured(Event({**base, "datacontenttype": "application/json"}, b'{"a": 1}')))["data"] == {
        "a": 1
    }
    binary = json.loads(to_structured(Event({**base, "datacontenttype": "application/octet-stream"}, b"\x00\xff")))
    assert binary["data_base64"] == "AP8="
    text = json.loads(to_structured(Event({**base, "datacontenttype": "text/plain"}, b"hi")))
    assert text["data"] == "hi"
    assert "data" not in json.loads(to_structured(Event(base, None)))


BASE = [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")]


@pytest.mark.parametrize("content_type", [
    "application/json; charset=utf-8", 'application/json; charset="utf-8"', "text/plain;a=%20b",
])
def test_content_type_is_datacontenttype_as_it_is_both_ways(content_type: str) -> None:
    event = from_binary([*BASE, ("Content-Type", content_type)], b"{}")
    assert event.attributes["datacontenttype"] == content_type
    headers, _ = to_binary(event)
    assert headers["Content-Type"] == content_type
    assert from_binary(headers.items(), b"{}").attributes["datacontenttype"] == content_type


def test_an_event_without_datacontenttype_gets_no_content_type() -> None:
    headers, body = to_binary(from_binary(BASE, b"raw"))
    assert "Content-Type" not in headers
    assert body == b"raw"


@pytest.mark.parametrize("value", ["bad%FFutf8", "%C0%A0", "caf\udce9", "a\udcff"])
def test_ce_header_values_that_are_not_utf8_name_the_attribute(value: str) -> None:
    # aiohttp hands raw non-UTF-8 header bytes over as lone surrogates (surrogateescape).
    with pytest.raises(InvalidEvent) as err:
        from_binary([*BASE, ("ce-subject", value)], b"")
    assert (err.value.field, err.value.status) == ("subject", 400)
    assert "ce-subject" in err.value.reason


def test_raw_utf8_and_unneeded_percent_encoding_are_accepted() -> None:
    event = from_binary([*BASE, ("ce-subject", "café"), ("ce-region", "%65%75")], b"")
    assert (event.attributes["subject"], event.attributes["region"]) == ("café", "eu")


@pytest.mark.parametrize("content_type", ["text/plain; charset=café", "text/plain\r\nx: y", "text/pl\udce9in"])
def test_datacontenttype_must_be_printable_ascii(content_type: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        from_binary([*BASE, ("Content-Type", content_type)], b"")
    assert err.value.field == "datacontenttype"


STRUCTURED = b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data" : %s }'


@pytest.mark.parametrize("data", [
    b"123456789012345678901234567890", b"1E2", b'"line\\u2028sep"', b'{ "a" :\n [1.50, -0] }', b'"abc"', b"null ",
])
def test_structured_data_keeps_its_exact_bytes(data: bytes) -> None:
    event = from_structured(STRUCTURED % data)
    if data.strip() == b"null":
        assert event.data is None
        return
    assert event.data == data
    assert to_structured(event).endswith(b'"data":' + data + b"}")


def test_batch_data_keeps_its_exact_bytes_per_event() -> None:
    items = [STRUCTURED % d for d in (b"1E2", b"12345678901234567890123", b'{"x" : 1}')]
    events = from_batch(b"[" + b",".join(items) + b"]")
    assert [e.data for e in events] == [b"1E2", b"12345678901234567890123", b'{"x" : 1}']


def test_a_json_string_is_json_data_and_text_data_is_its_text() -> None:
    as_json = from_structured(STRUCTURED % b'"abc"')
    assert as_json.data == b'"abc"'
    text = from_structured(b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", '
                           b'"datacontenttype": "text/plain", "data": "a\\u2028b"}')
    assert text.data == "a\u2028b".encode()
    assert json.loads(to_structured(text))["data"] == "a\u2028b"


def test_structured_data_with_an_escaped_member_name_is_still_found() -> None:
    event = from_structured(b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "d\\u0061ta": 1E2}')
    assert event.data == b"1E2"


def test_deeply_nested_data_is_kept_exactly_or_refused_as_400() -> None:
    deep = b"[" * 500 + b"]" * 500  # deeper than orjson serializes (254): the bytes are kept as they are
    assert from_structured(STRUCTURED % deep).data == deep
    assert [e.data for e in from_batch(b"[" + STRUCTURED % deep + b"]")] == [deep]
    with pytest.raises(InvalidEvent) as err:
        from_structured(STRUCTURED % (b"[" * 1020 + b"]" * 1020))
    assert err.value.field == "data"


def test_a_double_quoted_header_value_is_unquoted_then_percent_decoded() -> None:
    event = from_binary([*BASE, ("ce-subject", '"a b \\"c\\" %41"'), ("ce-region", '"')], b"")
    assert (event.attributes["subject"], event.attributes["region"]) == ('a b "c" A', '"')


# ---- one pass over the headers, and the tables of names it keeps (docs/performance.md, "The ingress's own CPU")

def test_binary_attributes_keep_the_order_the_headers_came_in_content_type_in_its_place() -> None:
    headers = [("Host", "x"), ("ce-id", "1"), ("Content-Type", "text/plain"), ("CE-Source", "/s"),
               ("ce-specversion", "1.0"), ("traceparent", "00-a-b-01"), ("ce-type", "t")]
    [event] = from_http("text/plain", headers, b"hi")
    assert list(event.attributes) == ["id", "datacontenttype", "source", "specversion", "type"]
    assert event.attributes["datacontenttype"] == "text/plain"


@pytest.mark.parametrize("content_type_last", [True, False])
def test_of_two_headers_for_one_attribute_the_later_wins_in_the_place_of_the_first(content_type_last: bool) -> None:
    # As when each header was written into the attributes as it came: ce-datacontenttype and Content-Type
    # both carry datacontenttype; ce-ID and ce-id both carry id.
    pair = [("ce-datacontenttype", "text/x-ce"), ("Content-Type", "text/plain")]
    headers = [("ce-ID", "first"), ("ce-specversion", "1.0"), *(pair if content_type_last else pair[::-1]),
               ("ce-source", "/s"), ("ce-type", "t"), ("ce-id", "second")]
    [event] = from_http("text/plain", headers, b"hi")
    assert list(event.attributes) == ["id", "specversion", "datacontenttype", "source", "type"]
    assert event.attributes["id"] == "second"
    assert event.attributes["datacontenttype"] == ("text/plain" if content_type_last else "text/x-ce")


def test_no_specversion_is_not_a_cloudevent_even_when_another_ce_header_is_bad() -> None:
    # The first check, as before the headers were read in one pass: a bad value is not what is reported.
    with pytest.raises(InvalidEvent) as refused:
        from_http("text/plain", [("ce-id", "bad%FFutf8"), ("ce-source", "/s"), ("ce-type", "t")], b"")
    assert refused.value.field == "specversion" and "not a CloudEvent" in str(refused.value)


def test_the_tables_of_names_stay_bounded_and_names_past_them_are_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.events
    from core.headers import _PASSES, pass_through
    from core.kept import Kept

    # Empty tables of the module's own bounds, so this test fills them whatever ran before it.
    monkeypatch.setattr(core.events, "_ATTRIBUTE_OF", Kept(core.events._KEPT_MAX, core.events._KEPT_TEXT_MAX))
    monkeypatch.setattr(core.events, "_VALID_NAMES", Kept(core.events._KEPT_MAX, core.events._KEPT_TEXT_MAX))
    base = [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")]
    for i in range(core.events._KEPT_MAX + 50):  # a client inventing names: an extension and a header each
        [event] = from_http(None, [*base, (f"ce-x{i}", "v"), (f"X-Invented-{i}", "v"), ("Knative-Y", "1")], b"")
        assert event.attributes[f"x{i}"] == "v"
        assert pass_through([(f"X-B3-Id{i}", "z"), ("Other", "o")]) == {f"x-b3-id{i}": "z"}
    assert len(core.events._ATTRIBUTE_OF) <= core.events._KEPT_MAX
    assert len(core.events._VALID_NAMES) <= core.events._KEPT_MAX
    assert len(_PASSES) <= 4096
    long_name = "ce-" + "a" * (core.events._KEPT_TEXT_MAX + 1)
    [event] = from_http(None, [*base, (long_name, "v")], b"")
    assert event.attributes[long_name[3:].lower()] == "v" and long_name not in core.events._ATTRIBUTE_OF


def test_a_name_or_content_type_found_bad_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidEvent) as refused:
            from_binary([("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t"),
                         ("ce-bad_name", "v")], b"")
        assert refused.value.field == "bad_name"
        with pytest.raises(InvalidEvent) as refused:
            from_binary([("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t"),
                         ("Content-Type", "not a media type")], b"x")
        assert refused.value.field == "datacontenttype"
