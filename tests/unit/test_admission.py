"""Admission without I/O: the kind registry, known-field schemas, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from control.api import kinds
from control.api.admission import AdmissionSettings, FieldValidation, Refused, admit
from control.api.meta import with_generated_name
from core.errors import InvalidResource
from core.tls import new_ca

SETTINGS = AdmissionSettings()


def _trigger(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "t1", "namespace": "ns1"},
        "spec": {"broker": "default", "subscriber": {"uri": "http://sink/"}, **spec},
    }


def _kafka_source(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource", "metadata": {"name": "ks", "namespace": "ns1"},
        "spec": {"bootstrapServers": ["k:9092"], "topics": ["t"], "sink": {"uri": "http://sink/"}, **spec},
    }


def _refused(manifest: Any, validation: FieldValidation = FieldValidation.WARN) -> Refused:
    with pytest.raises(Refused) as info:
        admit(manifest, None, SETTINGS, validation)
    return info.value


def test_a_bad_name_does_not_hide_the_spec_problems() -> None:
    bad = _trigger(subscriber={"uri": "/relative"}, delivery={"retry": -1})
    bad["metadata"]["name"] = "Bad_Name"
    del bad["spec"]["broker"]
    paths = [e.path for e in _refused(bad).errors]
    assert paths == ["metadata.name", "spec.broker", "spec.subscriber.uri", "spec.delivery.retry"]


def test_metadata_that_is_not_a_mapping_still_lets_the_spec_be_checked() -> None:
    bad = _trigger(subscriber={})
    bad["metadata"] = ["t1"]
    paths = [e.path for e in _refused(bad).errors]
    assert paths == ["metadata", "spec.subscriber"]


@pytest.mark.parametrize("spec", ["a string", ["a", "list"], 7])
def test_a_spec_of_the_wrong_type_is_a_field_error_for_every_kind(spec: Any) -> None:
    for manifest in (_trigger(), _kafka_source(), {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                                   "metadata": {"name": "b", "labels": "x"}}):
        manifest["spec"] = spec
        errors = _refused(manifest).errors
        assert "spec" in [e.path for e in errors]


def test_unknown_fields_warn_name_the_path_and_are_pruned() -> None:
    manifest = _trigger(brokr="x", delivery={"retyr": 3})
    manifest["metadata"]["labelz"] = {"a": "b"}
    admitted = admit(manifest, None, SETTINGS)
    assert [w.message for w in admitted.warnings] == [
        'unknown field "metadata.labelz"', 'unknown field "spec.brokr"', 'unknown field "spec.delivery.retyr"',
    ]
    assert all(w.unknown for w in admitted.warnings)
    assert "brokr" not in admitted.obj["spec"]
    assert admitted.obj["spec"]["delivery"] == {}
    assert "labelz" not in admitted.obj["metadata"]
    assert manifest["spec"]["brokr"] == "x"  # the caller's manifest is left as it was


def test_strict_refuses_unknown_fields_and_ignore_says_nothing_of_them() -> None:
    manifest = _trigger(brokr="x")
    assert [(e.path, e.reason) for e in _refused(manifest, FieldValidation.STRICT).errors] == [
        ("spec.brokr", "unknown field")
    ]
    assert admit(manifest, None, SETTINGS, FieldValidation.IGNORE).warnings == []


def test_strict_keeps_not_implemented_fields_as_warnings() -> None:
    admitted = admit(_kafka_source(consumers=2), None, SETTINGS, FieldValidation.STRICT)
    assert [w.path for w in admitted.warnings] == ["spec.consumers"]
    assert "Nerve runs one consumer per topic" in admitted.warnings[0].message


def test_kafka_source_fields_nerve_does_not_implement_are_warned() -> None:
    # spec.net is implemented now (control/secrets.py): an enabled SASL says nothing at apply.
    manifest = _kafka_source(net={"sasl": {"enable": True, "user": {"secretKeyRef": {"name": "s", "key": "u"}},
                                           "password": {"secretKeyRef": {"name": "s", "key": "p"}}},
                                  "tls": {"enable": False}},
                             delivery={"format": "json"},
                             sink={"uri": "https://sink/", "CACerts": new_ca("test").cert_pem.decode()})
    manifest["metadata"]["labels"] = {"kafkasources.sources.knative.dev/key-type": "int"}
    messages = [str(w) for w in admit(manifest, None, SETTINGS).warnings]
    assert messages == [  # CACerts is acted on now: the sink is verified against it (core/tls.py)
        'field "spec.delivery.format" is accepted but not implemented by Nerve: events are delivered in binary mode',
        'field "metadata.labels.kafkasources.sources.knative.dev/key-type" is accepted but not implemented by Nerve: '
        "'int': record keys are always read as strings",
    ]


def test_net_with_everything_disabled_is_what_nerve_does_and_says_nothing() -> None:
    manifest = _kafka_source(net={"sasl": {"enable": False}, "tls": {"enable": False}}, consumers=1)
    assert admit(manifest, None, SETTINGS).warnings == []


def test_a_misspelt_filter_key_is_an_error_because_dropping_it_would_match_everything() -> None:
    errors = _refused(_trigger(filter={"atributes": {"type": "a"}})).errors
    assert [e.path for e in errors] == ["spec.filter.atributes"]
    refused = _refused(_trigger(filters=[{"exakt": {"type": "a"}}]))
    assert [e.path for e in refused.errors] == ["spec.filters[0].exakt"]
    assert refused.warnings == []  # the error says it; no second line about the same field


def test_broker_ref_is_refused_naming_what_to_use() -> None:
    errors = _refused(_trigger(brokerRef={"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                          "name": "default"})).errors
    assert [(e.path, e.reason) for e in errors] == [
        ("spec.brokerRef", "not implemented by Nerve; name the Broker in spec.broker")
    ]


def test_a_mistyped_manifest_kind_suggests_the_closest() -> None:
    with pytest.raises(InvalidResource) as info:
        admit({"apiVersion": "eventing.knative.dev/v1", "kind": "Triger", "metadata": {"name": "t"}}, None, SETTINGS)
    assert info.value.errors[0].reason == 'unknown kind "Triger"; did you mean "Trigger" (eventing.knative.dev/v1)?'
    with pytest.raises(InvalidResource) as info:
        admit({"apiVersion": "eventing.knative.dev/v1beta1", "kind": "Broker", "metadata": {"name": "b"}},
              None, SETTINGS)
    assert (info.value.errors[0].path, info.value.errors[0].reason) == (
        "apiVersion", "'eventing.knative.dev/v1beta1' is not served for Broker; use eventing.knative.dev/v1")


# ------------------------------------------------------------------------------------ the registry


def test_every_kind_is_found_by_each_of_its_spellings_and_manifest_versions() -> None:
    for kind in kinds.KINDS:
        for spelling in kind.spellings():
            assert kinds.resolve(spelling) is kind
            assert kinds.resolve(spelling.upper()) is kind
        for version in kind.api_versions():
            assert kinds.for_manifest(version, kind.kind) is kind
    assert kinds.for_manifest("sources.knative.dev/v1beta1", "KafkaSource") is kinds.KAFKA_SOURCE


@pytest.mark.parametrize(("typed", "meant"), [("brokrs", "brokers"), ("trigers", "triggers"), ("Triger", "trigger"),
                                              ("kafkasource.sources.knative.de", "kafkasource.sources.knative.dev")])
def test_a_mistyped_kind_suggests_the_closest_spelling(typed: str, meant: str) -> None:
    with pytest.raises(kinds.UnknownKind) as info:
        kinds.resolve(typed)
    assert info.value.message == f'unknown kind "{typed}"; did you mean "{meant}"?'


def test_a_kind_nothing_is_close_to_lists_what_nerve_knows() -> None:
    with pytest.raises(kinds.UnknownKind) as info:
        kinds.resolve("persistentvolumeclaims")
    assert info.value.message.startswith(
        'the server doesn\'t have a resource type "persistentvolumeclaims"; Nerve knows ')
    assert "eventing.knative.dev/v1/Trigger" in info.value.message


def test_not_found_messages_are_kubectls() -> None:
    assert kinds.TRIGGER.not_found("x") == 'triggers.eventing.knative.dev "x" not found'
    assert kinds.CONFIGMAP.not_found("x") == 'configmaps "x" not found'


def test_every_entry_has_a_schema_with_the_common_fields_and_a_name_column() -> None:
    for kind in kinds.KINDS:
        assert kind.schema.fields is not None
        assert {"apiVersion", "kind", "metadata"} <= set(kind.schema.fields), kind.kind
        assert kind.columns[0].header == "NAME"
        assert kind.columns[0].cell({"metadata": {"name": "n"}}) == "n"


def test_kafka_source_printer_columns_are_knatives() -> None:
    obj = _kafka_source()
    obj["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "NotFound"}]}
    obj["metadata"]["creationTimestamp"] = None
    cells = [(c.header, c.cell(obj)) for c in kinds.KAFKA_SOURCE.columns]
    assert cells == [("NAME", "ks"), ("TOPICS", '["t"]'), ("BOOTSTRAPSERVERS", '["k:9092"]'), ("READY", "False"),
                     ("REASON", "NotFound"), ("AGE", "<unknown>")]


def test_a_broker_class_nerve_does_not_run_is_accepted_with_a_warning() -> None:
    broker = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
              "metadata": {"name": "b", "annotations": {"eventing.knative.dev/broker.class": "RabbitMQBroker"}}}
    [warning] = admit(broker, None, SETTINGS).warnings
    assert warning.path == "metadata.annotations.eventing.knative.dev/broker.class"
    assert "'RabbitMQBroker' is not one of MTChannelBasedBroker, Kafka" in warning.message
    assert admit({**broker, "metadata": {"name": "b"}}, None, SETTINGS).warnings == []


def test_the_examples_and_knatives_own_yaml_have_no_field_nerve_does_not_know() -> None:
    """Strict validation is usable on real Knative YAML: the schemas know every field it writes."""
    examples = Path(__file__).parents[2] / "examples"
    documents = [d for p in sorted(examples.rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    knative = """
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: kafka-source, namespace: default}
spec:
  consumerGroup: knative-group
  bootstrapServers: [my-cluster-kafka-bootstrap.kafka:9092]
  topics: [knative-demo-topic]
  initialOffset: earliest
  ordering: unordered
  net: {sasl: {enable: false}, tls: {enable: false}}
  ceOverrides: {extensions: {team: a}}
  sink:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: event-display}
    uri: /path
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t, namespace: default, annotations: {kafka.eventing.knative.dev/delivery.order: ordered}}
spec:
  broker: default
  filters: [{any: [{exact: {type: a}}, {not: {prefix: {source: b}}}, {all: [{suffix: {type: c}}]}]}]
  subscriber: {ref: {apiVersion: v1, kind: Service, name: s}}
  delivery:
    deadLetterSink: {uri: "http://dls/"}
    retry: 3
    backoffPolicy: linear
    backoffDelay: PT1S
    timeout: PT5S
    retryAfterMax: PT10S
    format: json
"""
    documents += [d for d in yaml.safe_load_all(knative) if d]
    assert len(documents) >= 6
    rbac_kinds = {kind.kind for kind in kinds.RBAC_KINDS}
    for document in documents:
        # A generateName is made a name by the control service before admission (the registry example has two).
        warnings = admit(with_generated_name(document), None, SETTINGS, FieldValidation.STRICT).warnings
        # The RBAC kinds of a walkthrough (examples/apiserver-source) are known whole; their one warning says
        # that they grant nothing in embedded Nerve, not that a field is unknown.
        expected = ["kind"] if document["kind"] in rbac_kinds else []
        assert [w.path for w in warnings] == expected, document


def test_an_update_compares_with_the_stored_object_as_pruned() -> None:
    """A Broker stored with a field Nerve now drops is not "changed" when the same YAML is applied again."""
    broker = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "b", "namespace": "ns1"},
              "spec": {"brokr": "x"}}
    stored = admit(broker, None, SETTINGS).obj
    stored["spec"]["brokr"] = "x"  # as an older Nerve stored it
    assert admit(broker, stored, SETTINGS).obj["spec"] == {"delivery": stored["spec"]["delivery"]}
    changed = {**broker, "spec": {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}}}
    assert [e.path for e in _refused_update(changed, stored).errors] == ["spec.config"]


def _refused_update(manifest: dict[str, Any], old: dict[str, Any]) -> Refused:
    with pytest.raises(Refused) as info:
        admit(manifest, old, SETTINGS)
    return info.value
