"""Trigger (eventing.knative.dev/v1): defaulting, validation (filters included), immutable spec.broker."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from control.api import columns, schema
from control.api.delivery import default_delivery, validate_delivery
from control.api.destination import default_destination, validate_destination
from control.api.meta import DNS1123_SUBDOMAIN, mapping
from control.api.schema import LEAF, list_of, map_of
from core.errors import FieldError
from core.filters import validate_trigger_filters

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

BROKER_LABEL = "eventing.knative.dev/broker"
ORDER_ANNOTATION = "kafka.eventing.knative.dev/delivery.order"
DEPENDENCY_ANNOTATION = "knative.dev/dependency"

# SubscriptionsAPIFilter (`ev:pkg/apis/eventing/v1/trigger_types.go`) nests itself in all/any/not.
_FILTER_FIELDS: dict[str, schema.Node] = {"exact": map_of(), "prefix": map_of(), "suffix": map_of(), "cesql": LEAF}
_FILTER = schema.Node(fields=_FILTER_FIELDS)
_FILTER_FIELDS.update({"all": list_of(_FILTER), "any": list_of(_FILTER), "not": _FILTER})
SCHEMA = schema.resource(schema.obj({
    "broker": LEAF,
    "brokerRef": schema.KREFERENCE,  # refused by validate_trigger, which says why
    "filter": schema.obj({"attributes": map_of()}),
    "filters": list_of(_FILTER),
    "subscriber": schema.DESTINATION,
    "delivery": schema.DELIVERY,
}))
COLUMNS = (columns.NAME, columns.field("BROKER", "spec", "broker"),
           columns.field("SUBSCRIBER_URI", "status", "subscriberUri"), columns.AGE, columns.READY, columns.REASON)


V1ALPHA1 = "eventing.knative.dev/v1alpha1"
_OLD_SERVING = ("serving.knative.dev/v1alpha1", "serving.knative.dev/v1beta1")


def convert_trigger(obj: dict[str, Any]) -> None:
    """A v1alpha1 Trigger (as the registry seed writes it), in place, as v1.

    v1alpha1 defaulted `spec.broker` to `default`; its `filter.sourceAndType` {type, source} is the v1
    exact-match `filter.attributes` (an empty value, v1alpha1's "Any", matches everything: left out); its
    subscriber ref was a core ObjectReference (`uid`, `resourceVersion`, `fieldPath` dropped, a
    v1alpha1/v1beta1 Knative Service named at serving.knative.dev/v1) and `dnsName` its old spelling of `uri`.
    """
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("broker", "default")
    filt = spec.get("filter")
    if isinstance(filt, dict) and "sourceAndType" in filt:
        pair = filt.pop("sourceAndType")
        attributes = filt.setdefault("attributes", {})
        if isinstance(pair, dict) and isinstance(attributes, dict):
            attributes.update({k: v for k in ("type", "source") if (v := pair.get(k)) not in (None, "", "Any")})
    subscriber = spec.get("subscriber")
    if not isinstance(subscriber, dict):
        return
    if "dnsName" in subscriber:
        dns_name = subscriber.pop("dnsName")
        subscriber.setdefault("uri", dns_name)
    ref = subscriber.get("ref")
    if isinstance(ref, dict):
        for key in ("uid", "resourceVersion", "fieldPath"):
            ref.pop(key, None)
        if ref.get("kind") == "Service" and ref.get("apiVersion") in _OLD_SERVING:
            ref["apiVersion"] = "serving.knative.dev/v1"


def default_trigger(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    meta = obj["metadata"]
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if isinstance(spec.get("broker"), str) and isinstance(meta.setdefault("labels", {}), dict):
        meta["labels"][BROKER_LABEL] = spec["broker"]
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
        errors.append(FieldError("spec.brokerRef", "not implemented by Nerve; name the Broker in spec.broker"))
    if not isinstance(broker, str) or not broker:
        errors.append(FieldError("spec.broker", "required"))
    elif len(broker) > 253 or not DNS1123_SUBDOMAIN.fullmatch(broker):
        errors.append(FieldError("spec.broker", f"{broker!r} is not a valid Broker name"))
    if "subscriber" not in spec:
        errors.append(FieldError("spec.subscriber", "required"))
    else:
        errors += validate_destination(spec["subscriber"], "spec.subscriber", namespace)
    filt = spec.get("filter")
    if filt is not None and not isinstance(filt, dict):
        errors.append(FieldError("spec.filter", "must be an object with attributes"))
        filt = None
    # Dropping a misspelt key would leave an empty filter that matches every event: refuse it instead.
    errors += [FieldError(f"spec.filter.{key}", "unknown field; spec.filter has only attributes (a misspelt "
                          "key would make the Trigger match every event)")
               for key in (filt or {}) if key != "attributes"]
    attributes = (filt or {}).get("attributes")
    errors += validate_trigger_filters(attributes, spec.get("filters"), "spec")
    errors += validate_delivery(spec.get("delivery"), "spec.delivery", namespace)
    annotations = obj["metadata"].get("annotations")
    order = annotations.get(ORDER_ANNOTATION) if isinstance(annotations, dict) else None
    if order is not None and order not in ("ordered", "unordered"):
        errors.append(
            FieldError(f"metadata.annotations.{ORDER_ANNOTATION}", f"{order!r} must be ordered or unordered")
        )
    if isinstance(annotations, dict) and DEPENDENCY_ANNOTATION in annotations:
        errors += validate_dependency(annotations[DEPENDENCY_ANNOTATION], namespace)
    return errors


def dependency_of(trigger: dict[str, Any]) -> dict[str, Any] | None:
    """The ObjectReference in `knative.dev/dependency` (already validated), or None without one."""
    annotations = mapping(trigger["metadata"].get("annotations"))
    if DEPENDENCY_ANNOTATION not in annotations:
        return None
    try:
        ref = json.loads(annotations[DEPENDENCY_ANNOTATION])
    except ValueError:
        return None
    return ref if isinstance(ref, dict) else None


def validate_dependency(value: Any, namespace: str) -> list[FieldError]:
    """Knative's validateDependencyAnnotation: a JSON ObjectReference with kind, name and apiVersion, and a
    namespace that is empty or the Trigger's."""
    path = f"metadata.annotations.{DEPENDENCY_ANNOTATION}"
    try:
        ref = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        ref = None
    if not isinstance(ref, dict):
        return [FieldError(path, f"the provided annotation was not a corev1.ObjectReference: {value!r} (write "
                                 'JSON such as {"kind": "PingSource", "name": "p", '
                                 '"apiVersion": "sources.knative.dev/v1"})')]
    errors = [FieldError(f"{path}.{key}", "required") for key in ("kind", "name", "apiVersion")
              if not isinstance(ref.get(key), str) or not ref[key]]
    if ref.get("namespace") not in (None, "", namespace):
        errors.append(FieldError(f"{path}.namespace", f"must be empty or equal to the trigger namespace {namespace!r}"))
    return errors


def validate_trigger_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    old_broker, new_broker = mapping(old.get("spec")).get("broker"), mapping(new.get("spec")).get("broker")
    if old_broker != new_broker:
        reason = f"immutable: changed from {old_broker!r} to {new_broker!r}; delete and re-create the Trigger"
        return [FieldError("spec.broker", reason)]
    return []
