"""The Kubernetes core kinds Nerve stores for Knative YAML's sake: ConfigMap, Service, Namespace.

Nerve reads a ConfigMap's `data` (Broker and KafkaSource config), a Service's `nerve.dev/url`
annotation (how a `v1/Service` ref resolves without Kubernetes) and a Namespace's name. The rest of a
Service or Namespace spec is Kubernetes' business, so it is accepted as it is and not looked into.
"""

from __future__ import annotations

from typing import Any

from control.api import columns, schema
from control.api.schema import LEAF, OPEN, map_of, unimplemented
from core.errors import FieldError

CONFIGMAP_SCHEMA = schema.resource(
    None, data=map_of(),
    binaryData=unimplemented(map_of(), "Nerve reads only a ConfigMap's data"),
    immutable=LEAF,
)
SERVICE_SCHEMA = schema.resource(OPEN)
NAMESPACE_SCHEMA = schema.resource(OPEN)
CONFIGMAP_COLUMNS = (columns.NAME, columns.Column("DATA", lambda o: str(len(o.get("data") or {}))), columns.AGE)


def validate_configmap(obj: dict[str, Any]) -> list[FieldError]:
    data = obj.get("data")
    if data is not None and (not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())):
        return [FieldError("data", "must be a map of strings to strings")]
    return []
