"""EventType (eventing.knative.dev/v1beta3): the event registry's entries, one (type, source, ...) each.

Stored as v1beta3 (`ev:pkg/apis/eventing/v1beta3/eventtype_types.go`): `spec.reference` (the Broker,
Channel, Trigger or Subscription the events are found at), `description`, and `attributes[]` of
{name, required, value}. Knative stores v1beta2; Nerve stores one version per kind and takes the newest,
the one auto-create writes, so `nerve get eventtype -o yaml` answers in the form Knative now documents.
v1beta2, v1beta1 and the registry seed's v1alpha1 (`spec.type`, `source`, `schema`, `broker`) are
converted on admission as Knative's v1beta2 -> v1beta3 conversion does (`convert_eventtype`).

Validation (`eventtype_validation.go`): `attributes` must name `type`, `source`, `specversion` and `id`;
every spec field is immutable.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from control.api import columns, schema
from control.api.destination import validate_kreference
from control.api.meta import mapping
from control.api.schema import LEAF, list_of
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

API_VERSION = "eventing.knative.dev/v1beta3"
OLDER_VERSIONS = ("eventing.knative.dev/v1beta2", "eventing.knative.dev/v1beta1", "eventing.knative.dev/v1alpha1")
BROKER_API_VERSION = "eventing.knative.dev/v1"
REQUIRED_ATTRIBUTES = ("type", "source", "specversion", "id")
SCHEMA_ATTRIBUTE = "schemadata"
"""The v1beta3 attribute Knative converts v1beta2's `spec.schema` into (and auto-create fills from `dataschema`)."""
# CloudEvents attribute names: lower-case letters and digits (CE 1.0 §Attribute Naming Convention).
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")

SCHEMA = schema.resource(schema.obj({
    "reference": schema.KREFERENCE,
    "description": LEAF,
    "attributes": list_of(schema.obj({"name": LEAF, "required": LEAF, "value": LEAF})),
}))


def attribute(obj: dict[str, Any], name: str) -> str:
    """The value of the attribute `name` of a stored EventType ("" when unset or a template-less entry)."""
    for attr in mapping(obj.get("spec")).get("attributes") or []:
        if isinstance(attr, dict) and attr.get("name") == name:
            return str(attr.get("value") or "")
    return ""


def reference_column(obj: dict[str, Any]) -> str:
    """A Broker by its name, as the registry seed's BROKER column shows it; anything else as Kind/name."""
    ref = mapping(mapping(obj.get("spec")).get("reference"))
    if not ref.get("name"):
        return ""
    return str(ref["name"]) if ref.get("kind") == "Broker" else f"{ref.get('kind')}/{ref['name']}"


COLUMNS = (
    columns.NAME,
    columns.Column("TYPE", lambda o: attribute(o, "type"), '.spec.attributes[?(@.name=="type")].value'),
    columns.Column("SOURCE", lambda o: attribute(o, "source"), '.spec.attributes[?(@.name=="source")].value'),
    columns.Column("SCHEMA", lambda o: attribute(o, SCHEMA_ATTRIBUTE) or attribute(o, "dataschema"),
                   f'.spec.attributes[?(@.name=="{SCHEMA_ATTRIBUTE}")].value'),
    columns.Column("REFERENCE", reference_column),
    columns.field("DESCRIPTION", "spec", "description"),
    columns.READY,
    columns.REASON,
)


def convert_eventtype(obj: dict[str, Any]) -> None:
    """An older EventType manifest, in place, as v1beta3 (`ev:pkg/apis/eventing/v1beta2/eventtype_conversion.go`).

    `spec.type` and `spec.source` become required attributes with those values, `spec.schema` the optional
    `schemadata` attribute, and `specversion` and `id` are added as required; `description` and `reference`
    are kept. The deprecated `spec.broker` (v1beta2, and the only reference v1alpha1 has) becomes a reference
    to that Broker when no reference is given. v1beta2's opaque `schemaData` has no v1beta3 field: dropped,
    as Knative drops it. A v1beta3 manifest is left as it is.
    """
    if obj.get("apiVersion") == API_VERSION or obj.get("apiVersion") not in OLDER_VERSIONS:
        return
    obj["apiVersion"] = API_VERSION
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    attributes: list[dict[str, Any]] = [{"name": "specversion", "required": True}, {"name": "id", "required": True}]
    if spec.get("type") not in (None, ""):
        attributes.append({"name": "type", "required": True, "value": spec["type"]})
    if spec.get("source") not in (None, ""):
        attributes.append({"name": "source", "required": True, "value": spec["source"]})
    if spec.get("schema") not in (None, ""):
        attributes.append({"name": SCHEMA_ATTRIBUTE, "required": False, "value": spec["schema"]})
    converted: dict[str, Any] = {}
    reference = spec.get("reference")
    if reference is None and isinstance(spec.get("broker"), str) and spec["broker"]:
        reference = {"apiVersion": BROKER_API_VERSION, "kind": "Broker", "name": spec["broker"]}
    if reference is not None:
        converted["reference"] = reference
    if spec.get("description") is not None:
        converted["description"] = spec["description"]
    converted["attributes"] = attributes
    obj["spec"] = converted


def default_eventtype(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("reference"), dict):
        spec["reference"].setdefault("namespace", obj["metadata"]["namespace"])


def validate_eventtype(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "required: an object with attributes (type, source, specversion, id)")]
    errors: list[FieldError] = []
    if spec.get("reference") is not None:
        errors += validate_kreference(spec["reference"], "spec.reference", obj["metadata"]["namespace"])
    if spec.get("description") is not None and not isinstance(spec["description"], str):
        errors.append(FieldError("spec.description", "must be a string"))
    attributes = spec.get("attributes")
    if not isinstance(attributes, list):
        names: set[str] = set()
        if attributes is not None:
            errors.append(FieldError("spec.attributes", "must be a list of {name, required, value}"))
    else:
        names = set()
        for i, attr in enumerate(attributes):
            errors += _validate_attribute(attr, f"spec.attributes[{i}]", names)
    missing = [name for name in REQUIRED_ATTRIBUTES if name not in names]
    if missing:
        errors.append(FieldError("spec.attributes", f"missing field(s): {', '.join(missing)} (an EventType's "
                                 "attributes must name type, source, specversion and id)"))
    return errors


def _validate_attribute(attr: Any, path: str, names: set[str]) -> list[FieldError]:
    if not isinstance(attr, dict):
        return [FieldError(path, "must be an object with name, required and value")]
    errors: list[FieldError] = []
    name = attr.get("name")
    if not isinstance(name, str) or not name:
        errors.append(FieldError(f"{path}.name", "required"))
    elif not _ATTRIBUTE_NAME.fullmatch(name):
        errors.append(FieldError(f"{path}.name", f"{name!r} is not a CloudEvents attribute name "
                                 "(lower-case letters and digits)"))
    elif name in names:
        errors.append(FieldError(f"{path}.name", f"{name!r} is listed twice"))
    else:
        names.add(name)
    if attr.get("required") is not None and not isinstance(attr["required"], bool):
        errors.append(FieldError(f"{path}.required", "must be true or false"))
    if attr.get("value") is not None and not isinstance(attr["value"], str):
        errors.append(FieldError(f"{path}.value", "must be a string"))
    return errors


def validate_eventtype_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """Every spec field is immutable (Knative: "Immutable fields changed"): each changed one is named."""
    old_spec, new_spec = mapping(old.get("spec")), mapping(new.get("spec"))
    return [FieldError(f"spec.{key}", f"immutable: changed from {old_spec.get(key)!r} to {new_spec.get(key)!r}; "
                       "delete and re-create the EventType")
            for key in sorted(set(old_spec) | set(new_spec)) if old_spec.get(key) != new_spec.get(key)]


def trigger_for(eventtype: dict[str, Any], *, name: str | None = None) -> dict[str, Any] | None:
    """A Trigger that subscribes to exactly this EventType's type and source on the Broker it references,
    for `nerve describe eventtype` (the registry's point: from an entry to a subscription with nothing else
    to read). None when the EventType references no Broker. The subscriber is left for the user to fill."""
    meta, ref = eventtype["metadata"], mapping(mapping(eventtype.get("spec")).get("reference"))
    if ref.get("kind") != "Broker" or not ref.get("name"):
        return None
    attributes = {key: value for key in ("type", "source") if (value := attribute(eventtype, key))}
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": name or _trigger_name(meta["name"]), "namespace": meta.get("namespace", "")},
        "spec": {
            "broker": ref["name"],
            "filter": {"attributes": attributes},
            "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "<your-subscriber>"}},
        },
    }


def _trigger_name(eventtype_name: str) -> str:
    # The EventType's name is a DNS-1123 subdomain already; keep the result one under 253 characters.
    return f"{eventtype_name[:240].rstrip('.-')}-trigger"
