"""The Kubernetes core kinds Nerve stores for Knative YAML's sake: ConfigMap, Service, Namespace.

Nerve reads a ConfigMap's `data` (Broker and KafkaSource config), a Namespace's name, and of a Service
its `nerve.dev/url` annotation, `spec.selector` and `spec.ports` (how a `v1/Service` ref resolves
without Kubernetes: control/resolver.py, to the annotation's URL or to the local workload the selector
matches). The rest of a Service or Namespace spec is Kubernetes' business, accepted as it is.
"""

from __future__ import annotations

from typing import Any

from control.api import columns, schema
from control.api.meta import mapping
from control.api.schema import LEAF, OPEN, map_of, unimplemented
from core import features
from core.errors import FieldError

CONFIGMAP_SCHEMA = schema.resource(
    None, data=map_of(),
    binaryData=unimplemented(map_of(), "Nerve reads only a ConfigMap's data"),
    immutable=LEAF,
)
SERVICE_SCHEMA = schema.resource(OPEN)
NAMESPACE_SCHEMA = schema.resource(OPEN)


def _service_ports(obj: dict[str, Any]) -> str:
    ports = mapping(obj.get("spec")).get("ports") or []
    text = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports if isinstance(p, dict))
    return text or "<none>"


def _selector(obj: dict[str, Any]) -> str:
    selector = mapping(obj.get("spec")).get("selector")
    return ",".join(f"{k}={v}" for k, v in selector.items()) if isinstance(selector, dict) and selector else "<none>"


SERVICE_COLUMNS = (columns.NAME,
                   columns.Column("TYPE", lambda o: str(mapping(o.get("spec")).get("type") or "ClusterIP")),
                   columns.Column("PORT(S)", _service_ports), columns.Column("SELECTOR", _selector), columns.AGE)
CONFIGMAP_COLUMNS = (columns.NAME, columns.Column("DATA", lambda o: str(len(o.get("data") or {}))), columns.AGE)


def validate_configmap(obj: dict[str, Any]) -> list[FieldError]:
    data = obj.get("data")
    if data is not None and (not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())):
        return [FieldError("data", "must be a map of strings to strings")]
    if features.is_features_configmap(obj):
        # Knative's feature flags: a bad value would otherwise leave a flag silently off (core/features.py).
        return features.problems(data)
    return []


def validate_service(obj: dict[str, Any]) -> list[FieldError]:
    """The fields a Service ref's resolution reads: the selector (labels) and the ports."""
    spec = obj.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors: list[FieldError] = []
    selector = spec.get("selector")
    if selector is not None and (not isinstance(selector, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in selector.items())):
        errors.append(FieldError("spec.selector", "must be a map of label keys to values"))
    ports = spec.get("ports")
    if ports is None:
        return errors
    if not isinstance(ports, list):
        return [*errors, FieldError("spec.ports", "must be a list of ports")]
    for i, port in enumerate(ports):
        where = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            errors.append(FieldError(where, "must be an object with port"))
            continue
        number = port.get("port")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            errors.append(FieldError(f"{where}.port", f"{number!r} must be a port number (1-65535)"))
        target = port.get("targetPort")
        if target is not None and not (isinstance(target, str) and target) and not (
                isinstance(target, int) and not isinstance(target, bool) and 1 <= target <= 65535):
            errors.append(FieldError(f"{where}.targetPort", f"{target!r} must be a port number or a port name"))
    return errors
