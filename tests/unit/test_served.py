"""Which objects are Nerve's next to Knative (control/reconcilers/served.py): a table."""

from __future__ import annotations

from typing import Any

import pytest

from control.reconcilers.served import Served, own, reference

SERVED = Served.parse("NatsJetStreamBroker", " NatsJetStreamChannel ,")
KINDS = frozenset({"InMemoryChannel", "KafkaChannel", "NatsJetStreamChannel"})


def broker(cls: str | None) -> dict[str, Any]:
    annotations = {"eventing.knative.dev/broker.class": cls} if cls else {}
    return {"kind": "Broker", "metadata": {"name": "b", "annotations": annotations}}


@pytest.mark.parametrize(("obj", "referenced", "expected"), [
    (broker("NatsJetStreamBroker"), None, True),
    (broker("MTChannelBasedBroker"), None, False),
    (broker(None), None, True),  # Nerve's webhook gives it Nerve's default class
    ({"kind": "Trigger", "spec": {"broker": "b"}}, broker("MTChannelBasedBroker"), False),
    ({"kind": "Trigger", "spec": {"broker": "b"}}, broker("NatsJetStreamBroker"), True),
    ({"kind": "Trigger", "spec": {"broker": "b"}}, None, True),  # missing Broker: Nerve says so
    ({"kind": "InMemoryChannel"}, None, False),
    ({"kind": "NatsJetStreamChannel"}, None, True),
    ({"kind": "Channel", "spec": {"channelTemplate": {"kind": "InMemoryChannel"}}}, None, False),
    ({"kind": "Channel", "spec": {}}, None, True),
    ({"kind": "Subscription", "spec": {"channel": {"kind": "InMemoryChannel", "name": "c"}}},
     {"kind": "InMemoryChannel"}, False),
    ({"kind": "PingSource"}, None, True),
])
def test_own(obj: dict[str, Any], referenced: dict[str, Any] | None, expected: bool) -> None:
    assert own(obj, SERVED, KINDS, referenced) is expected


def test_reference_names_what_decides() -> None:
    assert reference({"kind": "Trigger", "spec": {"broker": "default"}}) == ("Broker", "default")
    assert reference({"kind": "Subscription", "spec": {"channel": {"kind": "Channel", "name": "c"}}}) == (
        "Channel", "c")
    assert reference({"kind": "Broker"}) is None
    assert SERVED.channel_kinds == frozenset({"NatsJetStreamChannel"})
