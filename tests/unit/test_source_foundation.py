"""The pieces every source kind shares: the Source duck's checks, version conversion, categories, and
events a source makes itself arriving at a real HTTP sink as Knative's adapters send them."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control.api import kinds, source
from control.api.admission import AdmissionSettings, admit
from control.reconcilers.resources.source import contract_source, resolve_sink, source_status
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from core.delivery import Deliverer, Sender, pooled_session
from sources.emit import Emitter
from tests.support.receiver import Answer, Receiver


@pytest.mark.parametrize(("overrides", "path", "reason"), [
    ({"extensions": {"team-a": "x"}}, "spec.ceOverrides.extensions.team-a",
     "an extension name is ASCII letters and digits only"),
    ({"extensions": {"type": "x"}}, "spec.ceOverrides.extensions.type",
     "'type' is a CloudEvents attribute the source sets; only extensions can be overridden"),
    ({"extensions": {"n": 1}}, "spec.ceOverrides.extensions.n", "must be a string"),
    ("x", "spec.ceOverrides", "must be an object with extensions"),
])
def test_bad_overrides_are_refused_with_their_field(overrides: Any, path: str, reason: str) -> None:
    errors = source.validate_duck({"sink": {"uri": "http://x/"}, "ceOverrides": overrides}, "default")
    assert [(e.path, e.reason) for e in errors] == [(path, reason)]


def test_a_source_without_a_sink_is_refused_unless_the_kind_allows_it() -> None:
    assert [(e.path, e.reason) for e in source.validate_duck({}, "default")] == [("spec.sink", "required")]
    assert source.validate_duck({}, "default", sink_required=False) == []


def test_an_older_version_is_stored_as_the_kind_s_version() -> None:
    manifest = {"apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource", "metadata": {"name": "k"},
                "spec": {"bootstrapServers": ["h:9092"], "topics": ["t"], "sink": {"uri": "http://x/"}}}
    assert admit(manifest, None, AdmissionSettings()).obj["apiVersion"] == "sources.knative.dev/v1"


def test_every_source_kind_is_in_the_sources_category() -> None:
    assert kinds.KAFKA_SOURCE in kinds.in_category(source.CATEGORY)
    assert kinds.BROKER not in kinds.in_category(source.CATEGORY)


def _source_obj(sink: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ceOverrides": {"extensions": {"team": "payments"}}}
    if sink is not None:
        spec["sink"] = sink
    return {"kind": "PingSource", "metadata": {"namespace": "ns1", "name": "p", "uid": "u1", "generation": 2},
            "spec": spec}


def test_sink_status_and_contract_entry() -> None:
    resolver = Resolver(Snapshot(), "http://{name}.{namespace}.svc")
    condition, uri = resolve_sink(_source_obj(None), resolver)
    assert (condition["status"], condition["reason"], uri) == ("False", "SinkEmpty", "")
    obj = _source_obj({"uri": "http://sink.example/"})
    condition, uri = resolve_sink(obj, resolver)
    status = source_status(obj, [condition], uri, [{"type": "t", "source": "s"}])
    assert (status["sinkUri"], status["ceAttributes"], status["observedGeneration"]) == (
        "http://sink.example/", [{"type": "t", "source": "s"}], 2)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"SinkProvided": "True", "Ready": "True"}
    entry = contract_source(obj, uri, {"schedule": "* * * * *"})
    assert (entry.kind, entry.egress.destination, entry.config) == (
        "PingSource", "http://sink.example/", {"schedule": "* * * * *", "ceOverrides": {"team": "payments"}})


async def test_an_emitted_event_arrives_as_knative_s_adapters_send_it() -> None:
    # The sink fails once: the default source delivery retries rather than losing the event.
    receiver = Receiver(lambda index, event: Answer(503 if index == 0 else 202))
    url = await receiver.start()
    session = pooled_session(per_destination=4)
    try:
        entry = contract_source(_source_obj({"uri": url}), url, {})
        emitter = Emitter(entry, Deliverer(Sender(session, max_response_bytes=1024)), default_timeout_s=5)
        before = datetime.now(UTC) - timedelta(seconds=1)
        event = emitter.event("dev.knative.sources.ping", "/apis/v1/namespaces/ns1/pingsources/p", b'{"a":1}',
                              content_type="application/json")
        assert await emitter.send(event) == "delivered"
        first, second = receiver.received
        assert first.event.id == second.event.id
        got = second.event
        assert uuid.UUID(got.id)
        assert datetime.fromisoformat(str(got.attributes["time"])) >= before
        assert (got.type, got.source, got.attributes["team"], got.data, second.headers["Kn-Namespace"]) == (
            "dev.knative.sources.ping", "/apis/v1/namespaces/ns1/pingsources/p", "payments", b'{"a":1}', "ns1")
        emitter.update(dataclasses.replace(entry, config={"ceOverrides": {}}))
        assert "team" not in emitter.event("t", "s").attributes
    finally:
        await session.close()
        await receiver.stop()
