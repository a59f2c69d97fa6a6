"""Broker (eventing.knative.dev/v1): class defaulting, delivery defaulting, validation, immutability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import columns, schema
from control.api.delivery import DEFAULT_BROKER_DELIVERY, default_delivery, validate_delivery
from control.api.destination import validate_kreference
from control.api.meta import mapping
from control.api.schema import FieldNotice
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

CLASS_ANNOTATION = "eventing.knative.dev/broker.class"
# Broker class -> channel backend. Knative's own class names, so Knative YAML runs unchanged.
BROKER_CLASSES: dict[str, str] = {
    "MTChannelBasedBroker": "memory",
    "Kafka": "kafka",
    "KafkaNamespaced": "kafka",
    "NatsJetStreamBroker": "nats",
}
DEFAULT_CLASS_FOR_BACKEND = {"memory": "MTChannelBasedBroker", "kafka": "Kafka", "nats": "NatsJetStreamBroker"}

# An MTChannelBasedBroker sits on the channel kind its spec.config ConfigMap names under this key
# (Knative's `config-br-default-channel`); with none it sits on InMemoryChannel, the class's backend above.
CHANNEL_TEMPLATE_KEY = "channel-template-spec"


# `ev:pkg/apis/eventing/v1/broker_types.go`
SCHEMA = schema.resource(schema.obj({"config": schema.KREFERENCE, "delivery": schema.DELIVERY}))
COLUMNS = (columns.NAME, columns.field("URL", "status", "address", "url"), columns.AGE, columns.READY,
           columns.REASON)


def default_broker(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    meta = obj["metadata"]
    annotations = meta.setdefault("annotations", {})
    if isinstance(annotations, dict):
        annotations.setdefault(CLASS_ANNOTATION, settings.default_broker_class)
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if spec.get("delivery") is None:
        spec["delivery"] = dict(DEFAULT_BROKER_DELIVERY)
    default_delivery(spec.get("delivery"), meta["namespace"])
    config = spec.get("config")
    if isinstance(config, dict):
        config.setdefault("namespace", meta["namespace"])


def validate_broker(obj: dict[str, Any]) -> list[FieldError]:
    namespace = obj["metadata"]["namespace"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors: list[FieldError] = []
    annotations = obj["metadata"].get("annotations")
    broker_class = annotations.get(CLASS_ANNOTATION) if isinstance(annotations, dict) else None
    if not broker_class:
        errors.append(FieldError(f"metadata.annotations.{CLASS_ANNOTATION}", "missing field"))
    if spec.get("config") is not None:
        # Config is shared by the platform (Knative's Kafka config lives in knative-eventing).
        errors += validate_kreference(spec["config"], "spec.config", namespace, other_namespace=True)
    errors += validate_delivery(spec.get("delivery"), "spec.delivery", namespace)
    return errors


def notices_broker(obj: dict[str, Any]) -> list[FieldNotice]:
    """A class another Knative controller implements is valid Knative, but no Broker Nerve will run."""
    broker_class = mapping(obj["metadata"].get("annotations")).get(CLASS_ANNOTATION)
    if isinstance(broker_class, str) and broker_class and broker_class not in BROKER_CLASSES:
        return [schema.not_implemented(
            f"metadata.annotations.{CLASS_ANNOTATION}",
            f"class {broker_class!r} is not one of {', '.join(BROKER_CLASSES)}; the Broker will not become Ready")]
    return []


def validate_broker_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    old_class = old["metadata"].get("annotations", {}).get(CLASS_ANNOTATION)
    new_class = mapping(new["metadata"].get("annotations")).get(CLASS_ANNOTATION)
    if old_class != new_class:
        errors.append(
            FieldError(f"metadata.annotations.{CLASS_ANNOTATION}",
                       f"immutable: changed from {old_class!r} to {new_class!r}; delete and re-create the Broker")
        )
    old_spec = {k: v for k, v in mapping(old.get("spec")).items() if k != "delivery"}
    new_spec = {k: v for k, v in mapping(new.get("spec")).items() if k != "delivery"}
    for key in sorted(set(old_spec) | set(new_spec)):
        if old_spec.get(key) != new_spec.get(key):
            errors.append(FieldError(f"spec.{key}", "immutable: only spec.delivery may change on a Broker"))
    return errors
