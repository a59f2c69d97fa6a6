"""The Source duck (`pkg:apis/duck/v1/source_types.go`): `spec.sink` and `spec.ceOverrides`, shared by every
source kind (KafkaSource, PingSource, ApiServerSource, ContainerSource, SinkBinding).

A source kind's SCHEMA is `schema.resource(schema.obj({**source.DUCK, ...its own fields}))`; its defaulting
calls `default_duck` and its validation `validate_duck`, so the sink and the overrides are checked one way.
"""

from __future__ import annotations

import re
from typing import Any

from control.api import columns, schema
from control.api.destination import default_destination, validate_destination
from control.api.schema import Node, map_of
from core.errors import FieldError

CATEGORY = "sources"
"""kubectl's category of every source kind (`kubectl get sources`)."""

SINK_COLUMN = columns.field("SINK", "status", "sinkUri")
COLUMNS = (columns.NAME, SINK_COLUMN, columns.AGE, columns.READY, columns.REASON)
"""The printer columns most source CRDs of Knative have (NAME, SINK, AGE, READY, REASON), as the seeds print them."""

DUCK: dict[str, Node] = {
    "sink": schema.DESTINATION,
    "ceOverrides": schema.obj({"extensions": map_of()}),
}

# Knative's validateExtensionName: CloudEvents extension names are ASCII letters and digits.
_EXTENSION_NAME = re.compile(r"[A-Za-z0-9]+")
# The spec-defined attributes a source sets itself: an override of one would change what the event is.
_SPEC_ATTRIBUTES = frozenset({"specversion", "id", "source", "type", "datacontenttype", "dataschema",
                              "subject", "time", "data", "data_base64"})


def default_duck(spec: dict[str, Any], namespace: str) -> None:
    default_destination(spec.get("sink"), namespace)


def default_source(obj: dict[str, Any], settings: object) -> None:
    """The defaulting of a source kind that defaults nothing of its own."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        default_duck(spec, obj["metadata"]["namespace"])


def validate_duck(spec: dict[str, Any], namespace: str, *, sink_required: bool = True) -> list[FieldError]:
    """`spec.sink` (required unless said otherwise) and `spec.ceOverrides`, each error with its path."""
    errors: list[FieldError] = []
    if "sink" not in spec:
        if sink_required:
            errors.append(FieldError("spec.sink", "required"))
    else:
        errors += validate_destination(spec["sink"], "spec.sink", namespace)
    return errors + validate_overrides(spec.get("ceOverrides"))


def validate_overrides(overrides: Any) -> list[FieldError]:
    if overrides is None:
        return []
    if not isinstance(overrides, dict):
        return [FieldError("spec.ceOverrides", "must be an object with extensions")]
    extensions = overrides.get("extensions")
    if extensions is None:
        return []
    if not isinstance(extensions, dict):
        return [FieldError("spec.ceOverrides.extensions", "must be a map of extension names to strings")]
    errors: list[FieldError] = []
    for name, value in extensions.items():
        path = f"spec.ceOverrides.extensions.{name}"
        if not isinstance(name, str) or not _EXTENSION_NAME.fullmatch(name):
            errors.append(FieldError(path, "an extension name is ASCII letters and digits only"))
        elif name.lower() in _SPEC_ATTRIBUTES:
            errors.append(FieldError(path, f"{name!r} is a CloudEvents attribute the source sets; only "
                                           "extensions can be overridden"))
        if not isinstance(value, str):
            errors.append(FieldError(path, "must be a string"))
    return errors


def overrides_of(spec: dict[str, Any]) -> dict[str, str]:
    """The extensions every event of the source carries (already validated)."""
    overrides = spec.get("ceOverrides")
    extensions = overrides.get("extensions") if isinstance(overrides, dict) else None
    return {str(k): str(v) for k, v in (extensions or {}).items()}
