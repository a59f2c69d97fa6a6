"""core/tracing.py: when tracing is on (the standard OTEL_* variables), and the names Knative gives spans."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core import tracing
from core.events import Event


@pytest.mark.parametrize(("environ", "on"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "nerve"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_tracing_is_on_only_when_an_exporter_is_configured(environ: dict[str, str], on: bool) -> None:
    assert tracing.configured(environ) is on


def test_setup_without_an_exporter_leaves_tracing_off() -> None:
    assert tracing.setup("nerve", {}) is False
    assert tracing.ENABLED is False


def test_span_names_and_owner_attributes_follow_knative() -> None:
    broker = tracing.SpanInfo.ingress("Broker", "ns1", "default")
    assert broker.name == "broker:default.ns1"
    assert broker.attributes["kn.broker.name"] == "default"
    assert tracing.SpanInfo.ingress("Channel", "ns1", "ch").name == "channel:ch.ns1"
    trigger = tracing.SpanInfo.delivery("Trigger", "ns1", "t1", "default")
    assert trigger.name == "trigger:t1.ns1"
    assert trigger.attributes["messaging.destination.name"] == "trigger:t1.ns1"
    assert trigger.attributes["kn.broker.namespace"] == "ns1"
    sub = tracing.SpanInfo.delivery("Subscription", "ns1", "s1", "ch")
    assert (sub.name, sub.attributes["kn.channel.name"]) == ("subscription:s1.ns1", "ch")
    ping = tracing.SpanInfo.delivery("PingSource", "ns1", "every-second", "every-second")
    assert (ping.name, ping.attributes["kn.source.name"]) == ("pingsource:every-second.ns1", "every-second")


def test_event_attributes_name_only_what_the_event_has() -> None:
    event = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "subject": "x"})
    assert tracing.event_attributes(event) == {
        "cloudevents.id": "1", "cloudevents.source": "/s", "cloudevents.specversion": "1.0",
        "cloudevents.type": "t", "cloudevents.subject": "x"}


def test_trace_id_of_a_traceparent() -> None:
    assert tracing.trace_id_of({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}) == \
        "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.trace_id_of({"traceparent": "garbage"}) is None
    assert tracing.trace_id_of({}) is None


def test_with_tracing_off_the_sdk_is_never_loaded() -> None:
    # A fresh interpreter, as a service starts: the whole data plane imported and set up without OTEL_*.
    code = ("import sys, ingress.app, dispatcher.service, sources.service, core.runtime\n"
            "from core import tracing\n"
            "assert tracing.setup('nerve', {}) is False\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk'))\n"
            "assert not loaded, loaded\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
