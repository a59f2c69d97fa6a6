"""KafkaSource (sources.knative.dev/v1 and v1beta1): Kafka topics -> a sink, with Trigger-like delivery."""

from __future__ import annotations

from typing import Any

from control.api.delivery import default_delivery, validate_delivery
from control.api.destination import default_destination, validate_destination
from core.errors import FieldError


def default_kafka_source(obj: dict[str, Any]) -> None:
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    spec.setdefault("consumerGroup", f"knative-kafka-source-{meta['namespace']}-{meta['name']}")
    spec.setdefault("consumers", 1)
    spec.setdefault("initialOffset", "latest")
    spec.setdefault("ordering", "ordered")
    default_destination(spec.get("sink"), meta["namespace"])
    default_delivery(spec.get("delivery"), meta["namespace"])


def _strings(value: Any, path: str) -> list[FieldError]:
    if not isinstance(value, list) or not value:
        return [FieldError(path, "required: a non-empty list")]
    return [FieldError(f"{path}[{i}]", "must be a non-empty string") for i, v in enumerate(value)
            if not isinstance(v, str) or not v]


def validate_kafka_source(obj: dict[str, Any]) -> list[FieldError]:
    namespace, spec = obj["metadata"]["namespace"], obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors = _strings(spec.get("bootstrapServers"), "spec.bootstrapServers")
    errors += _strings(spec.get("topics"), "spec.topics")
    if "sink" not in spec:
        errors.append(FieldError("spec.sink", "required"))
    else:
        errors += validate_destination(spec["sink"], "spec.sink", namespace)
    if spec.get("initialOffset") not in ("earliest", "latest"):
        errors.append(FieldError("spec.initialOffset", f"{spec.get('initialOffset')!r} must be earliest or latest"))
    if spec.get("ordering") not in ("ordered", "unordered"):
        errors.append(FieldError("spec.ordering", f"{spec.get('ordering')!r} must be ordered or unordered"))
    consumers = spec.get("consumers")
    if not isinstance(consumers, int) or isinstance(consumers, bool) or consumers < 1:
        errors.append(FieldError("spec.consumers", f"{consumers!r} must be an integer >= 1"))
    if not isinstance(spec.get("consumerGroup"), str) or not spec["consumerGroup"]:
        errors.append(FieldError("spec.consumerGroup", "must be a non-empty string"))
    extensions = (spec.get("ceOverrides") or {}).get("extensions")
    if extensions is not None and (
        not isinstance(extensions, dict) or not all(isinstance(v, str) for v in extensions.values())
    ):
        errors.append(FieldError("spec.ceOverrides.extensions", "must be a map of extension names to strings"))
    errors += validate_delivery(spec.get("delivery"), "spec.delivery", namespace)
    return errors
