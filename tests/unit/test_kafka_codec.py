"""channels.kafka.encode writes what the cloudevents SDK's Kafka binding writes, byte for byte.

The record of an event is Kafka binary content mode, which Knative's Kafka Broker reads. `encode` no
longer goes through the SDK's `to_binary` (it cost more than the loop it runs, docs/performance.md); this
property test holds the two to the same value, key and headers, in the same order, for any event the
ingress can store: string, integer and Boolean attributes, a partition key of any of those types, data or
none, pass-through headers.
"""

from __future__ import annotations

from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.kafka import HEADER_PREFIX, decode, encode
from core.events import AttrValue, Event, attr_to_string

names = st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True).filter(
    lambda n: n not in ("specversion", "id", "source", "type", "datacontenttype", "partitionkey"))
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
values: st.SearchStrategy[AttrValue] = text | st.integers(-(2**31), 2**31 - 1) | st.booleans()


class _SdkFormat:
    """The data bytes as they are (what Nerve's binary mode stores)."""

    def write_data(self, data: Any, datacontenttype: str | None) -> bytes:
        return b"" if data is None else bytes(data)


class _SdkView:
    """What the SDK's binding reads from an event: the canonical texts, the data, the raw extensions."""

    def __init__(self, event: Event) -> None:
        self._event = event

    def get_attributes(self) -> dict[str, AttrValue]:
        return {name: attr_to_string(value) for name, value in self._event.attributes.items()}

    def get_data(self) -> bytes | None:
        return self._event.data

    def get_extension(self, name: str) -> AttrValue | None:
        return self._event.attributes.get(name)


def sdk_record(event: Event) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    message = ce_kafka.to_binary(_SdkView(event), _SdkFormat())  # type: ignore[arg-type]
    headers = list(message.headers.items())
    headers += [(HEADER_PREFIX + name, value.encode()) for name, value in event.headers.items()]
    key = message.key.encode() if isinstance(message.key, str) else message.key
    return message.value, key, headers


@st.composite
def events(draw: st.DrawFn) -> Event:
    attributes: dict[str, AttrValue] = {"specversion": "1.0", "id": draw(text), "source": draw(text),
                                        "type": draw(text)}
    extensions = draw(st.dictionaries(names, values, max_size=5))
    if draw(st.booleans()):
        extensions["partitionkey"] = draw(values)
    data: bytes | None = None
    if draw(st.booleans()):
        attributes["datacontenttype"] = draw(st.sampled_from(["application/json", "text/plain; charset=utf-8"]))
        data = draw(st.binary(max_size=40))
    elif draw(st.booleans()):
        data = b""
    # Extensions before and after the context attributes: the headers keep the attributes' order.
    order = draw(st.permutations([*attributes.items(), *extensions.items()]))
    headers = draw(st.dictionaries(st.sampled_from(["traceparent", "x-request-id", "knative-x"]), text, max_size=2))
    return Event(dict(order), data, headers)


@settings(max_examples=300, deadline=None)
@given(events())
def test_encode_writes_the_sdk_bindings_record_byte_for_byte(event: Event) -> None:
    assert encode(event) == sdk_record(event)


def test_a_boolean_attribute_is_true_or_false_and_a_partition_key_is_the_record_key() -> None:
    event = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "flag": True, "count": 5,
                   "partitionkey": "k-1", "datacontenttype": "application/json"}, b'{"a": 1}',
                  {"traceparent": "00-ab-cd-01"})
    value, key, headers = encode(event)
    assert value == b'{"a": 1}' and key == b"k-1"
    assert headers == [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t"),
                       ("ce_flag", b"true"), ("ce_count", b"5"), ("ce_partitionkey", b"k-1"),
                       ("content-type", b"application/json"), ("nerve_h_traceparent", b"00-ab-cd-01")]
    back = decode(value, key, headers)
    assert back.attributes["flag"] == "true" and back.data == b'{"a": 1}' and back.headers == event.headers
