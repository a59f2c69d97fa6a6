"""Admission: what a Kubernetes webhook does for Knative, run on every `nerve apply`.

`admit()` defaults a manifest and validates it (and, for an update, checks immutable fields). It raises
InvalidResource carrying every field error, so a bad manifest is refused whole and nothing is stored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from control.api import broker, kafkasource, kinds, trigger
from control.api.meta import DEFAULT_NAMESPACE, validate_metadata
from core.errors import FieldError, InvalidResource


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    default_broker_class: str = "MTChannelBasedBroker"


def identify(manifest: Any) -> kinds.Kind:
    if not isinstance(manifest, dict):
        raise InvalidResource([FieldError("", "a manifest must be a mapping with apiVersion, kind and metadata")])
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    missing = [FieldError(key, "required") for key in ("apiVersion", "kind") if not manifest.get(key)]
    if missing:
        raise InvalidResource(missing)
    found = kinds.for_manifest(str(api_version), str(kind))
    if found is None:
        raise InvalidResource([FieldError("kind", f"{api_version}/{kind} is not supported; Nerve knows "
                                                  f"{kinds.supported()}")])
    return found


def admit(manifest: Any, old: dict[str, Any] | None, settings: AdmissionSettings) -> dict[str, Any]:
    kind = identify(manifest)
    obj: dict[str, Any] = copy.deepcopy(manifest)
    errors = validate_metadata(obj.get("metadata"), namespaced=kind.namespaced)
    if errors:
        raise InvalidResource(errors)
    meta = obj["metadata"]
    if kind.namespaced:
        meta["namespace"] = meta.get("namespace") or DEFAULT_NAMESPACE
    else:
        meta.pop("namespace", None)
    # Server-owned fields are never taken from a manifest.
    obj.pop("status", None)
    for key in ("uid", "generation", "creationTimestamp", "resourceVersion"):
        meta.pop(key, None)
    if kind is kinds.BROKER:
        broker.default_broker(obj, default_class=settings.default_broker_class)
        errors = broker.validate_broker(obj)
        if old is not None and not errors:
            errors = broker.validate_broker_update(old, obj)
    elif kind is kinds.TRIGGER:
        trigger.default_trigger(obj)
        errors = trigger.validate_trigger(obj)
        if old is not None and not errors:
            errors = trigger.validate_trigger_update(old, obj)
    elif kind is kinds.KAFKA_SOURCE:
        kafkasource.default_kafka_source(obj)
        errors = kafkasource.validate_kafka_source(obj)
    elif kind is kinds.CONFIGMAP:
        data = obj.get("data")
        if data is not None and (
            not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())
        ):
            errors = [FieldError("data", "must be a map of strings to strings")]
    if errors:
        raise InvalidResource(errors)
    return obj
