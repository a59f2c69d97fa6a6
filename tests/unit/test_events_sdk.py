"""Property tests: Nerve's lean HTTP mapping and the cloudevents SDK read each other's events the same way.

Nerve parses binary mode without the SDK for speed (DESIGN.md, performance notes); these tests are
what allows that: whatever one side writes, the other reads back to the same attributes and data.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Event, from_binary, from_structured, to_binary, to_structured

RESERVED = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data",
            "data_base64", "datacontentencoding", "schemaurl"}
names = st.from_regex(r"[a-z][a-z0-9]{0,12}", fullmatch=True).filter(lambda n: n not in RESERVED)
text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC).isoformat().replace("+00:00", "Z"))
json_data = st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=20) | st.booleans(), max_size=4)


@st.composite
def events(draw: st.DrawFn) -> Event:
    attributes: dict[str, str | int | bool] = {
        "specversion": "1.0", "id": draw(text), "source": draw(text), "type": draw(text), "time": draw(times)}
    if draw(st.booleans()):
        attributes["subject"] = draw(text)
    attributes.update(draw(st.dictionaries(names, text, max_size=4)))
    kind = draw(st.sampled_from(["json", "text", "none"]))
    data: bytes | None = None
    if kind == "json":
        attributes["datacontenttype"] = "application/json"
        data = json.dumps(draw(json_data)).encode()
    elif kind == "text":
        attributes["datacontenttype"] = "text/plain"
        data = draw(text).encode()
    return Event(attributes, data)


def _sdk_attributes(event: Any) -> dict[str, str]:
    out = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        out[name] = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else str(value)
    return out


def _sdk_data(event: Any) -> Any:
    data = event.get_data()
    return data.decode() if isinstance(data, bytes) else data


def _sdk_event(event: Event, data: Any) -> CloudEvent:
    attributes: dict[str, Any] = dict(event.attributes)
    attributes["time"] = datetime.fromisoformat(str(attributes["time"]).replace("Z", "+00:00"))
    return CloudEvent(attributes, data)


def _our_data(event: Event) -> Any:
    if not event.data:
        return None
    if event.content_type == "application/json":
        return json.loads(event.data)
    return event.data.decode()


@settings(max_examples=150, deadline=None)
@given(events())
def test_the_sdk_reads_what_nerve_writes_in_binary_mode(event: Event) -> None:
    headers, body = to_binary(event)
    sdk_event = sdk_http.from_binary(sdk_http.HTTPMessage(headers=headers, body=body), JSONFormat())
    assert _sdk_attributes(sdk_event) == {k: str(v) for k, v in event.attributes.items()}
    assert _sdk_data(sdk_event) == _our_data(event)


@settings(max_examples=150, deadline=None)
@given(events())
def test_nerve_reads_what_the_sdk_writes_in_binary_mode(event: Event) -> None:
    sdk_event = _sdk_event(event, event.data)
    message = sdk_http.to_binary(sdk_event, JSONFormat())
    ours = from_binary(message.headers.items(), message.body)
    assert ours.attributes == event.attributes
    assert (ours.data or None) == event.data


@settings(max_examples=150, deadline=None)
@given(events())
def test_structured_mode_agrees_both_ways(event: Event) -> None:
    sdk_event = JSONFormat().read(None, to_structured(event))
    assert _sdk_attributes(sdk_event) == {k: str(v) for k, v in event.attributes.items()}
    assert _sdk_data(sdk_event) == _our_data(event)
    back = from_structured(JSONFormat().write(_sdk_event(event, _our_data(event))))
    assert back.attributes == event.attributes
    assert _our_data(back) == _our_data(event)
