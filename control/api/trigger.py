"""Trigger (eventing.knative.dev/v1): defaulting, validation (filters included), immutable spec.broker."""

from __future__ import annotations

import re
from typing import Any

from control.api.delivery import default_delivery, validate_delivery
from control.api.destination import default_destination, validate_destination
from core.errors import FieldError
from core.filters import validate_trigger_filters

BROKER_LABEL = "eventing.knative.dev/broker"
ORDER_ANNOTATION = "kafka.eventing.knative.dev/delivery.order"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def default_trigger(obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    spec = obj.setdefault("spec", {})
    if isinstance(spec.get("broker"), str):
        meta.setdefault("labels", {})[BROKER_LABEL] = spec["broker"]
    if spec.get("filter") is None:
        spec["filter"] = {"attributes": {}}
    default_destination(spec.get("subscriber"), meta["namespace"])
    default_delivery(spec.get("delivery"), meta["namespace"])


def validate_trigger(obj: dict[str, Any]) -> list[FieldError]:
    namespace = obj["metadata"]["namespace"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors: list[FieldError] = []
    broker = spec.get("broker")
    if "brokerRef" in spec:
        errors.append(FieldError("spec.brokerRef", "not supported by Nerve yet; use spec.broker"))
    if not isinstance(broker, str) or not broker:
        errors.append(FieldError("spec.broker", "required"))
    elif not _NAME.match(broker):
        errors.append(FieldError("spec.broker", f"{broker!r} is not a valid Broker name"))
    if "subscriber" not in spec:
        errors.append(FieldError("spec.subscriber", "required"))
    else:
        errors += validate_destination(spec["subscriber"], "spec.subscriber", namespace)
    filt = spec.get("filter")
    if filt is not None and not isinstance(filt, dict):
        errors.append(FieldError("spec.filter", "must be an object with attributes"))
        filt = None
    attributes = (filt or {}).get("attributes")
    errors += validate_trigger_filters(attributes, spec.get("filters"), "spec")
    errors += validate_delivery(spec.get("delivery"), "spec.delivery", namespace)
    order = obj["metadata"].get("annotations", {}).get(ORDER_ANNOTATION)
    if order is not None and order not in ("ordered", "unordered"):
        errors.append(
            FieldError(f"metadata.annotations.{ORDER_ANNOTATION}", f"{order!r} must be ordered or unordered")
        )
    return errors


def validate_trigger_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    old_broker, new_broker = old.get("spec", {}).get("broker"), new.get("spec", {}).get("broker")
    if old_broker != new_broker:
        reason = f"immutable: changed from {old_broker!r} to {new_broker!r}; delete and re-create the Trigger"
        return [FieldError("spec.broker", reason)]
    return []
