"""EventPolicy (eventing.knative.dev/v1alpha1): who may send to which Brokers and channels.

As Knative's `pkg/apis/eventing/v1alpha1/eventpolicy_*.go`:

- `spec.to[]`: each a `ref` {apiVersion, kind, name} or a `selector` {apiVersion, kind, matchLabels,
  matchExpressions} of the addressables in the policy's namespace it applies to; none: all of them.
- `spec.from[]`: each a `ref` {apiVersion, kind, name, namespace} of a sender (a Trigger,
  Subscription, source: resolved to its OIDC identity) or a `sub` string, the token subject itself
  (`system:serviceaccount:<ns>:<name>`), where `*` may only end it (a prefix match).
- `spec.filters[]`: the Subscriptions API dialects (as a Trigger's `spec.filters`), which each event
  must pass (else 403).

Defaulting sets a `from[].ref.namespace` to the policy's. Validation refuses a `from` or `to` entry with
both or neither of its two forms, a ref without apiVersion, kind or name, a `*` anywhere but at the end
of a `sub`, and a filter a Trigger would be refused for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import columns, schema
from control.api import selector as selector_api
from control.api.meta import mapping
from control.api.schema import LEAF, list_of
from control.api.trigger import SCHEMA as TRIGGER_SCHEMA
from core.errors import FieldError
from core.filters import validate_trigger_filters

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

API_VERSION = "eventing.knative.dev/v1alpha1"

_TRIGGER_SPEC = (TRIGGER_SCHEMA.fields or {})["spec"]
_FILTERS = (_TRIGGER_SPEC.fields or {})["filters"]
SCHEMA = schema.resource(schema.obj({
    "to": list_of(schema.obj({
        "ref": schema.obj({"apiVersion": LEAF, "kind": LEAF, "name": LEAF}),
        "selector": schema.extend(selector_api.SCHEMA, {"apiVersion": LEAF, "kind": LEAF}),
    })),
    "from": list_of(schema.obj({
        "ref": schema.obj({"apiVersion": LEAF, "kind": LEAF, "name": LEAF, "namespace": LEAF}),
        "sub": LEAF,
    })),
    "filters": _FILTERS,
}))

COLUMNS = (columns.NAME, columns.AGE, columns.READY, columns.REASON)


def default_event_policy(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    namespace = obj["metadata"].get("namespace", "")
    for entry in mapping(obj.get("spec")).get("from") or []:
        if isinstance(entry, dict) and isinstance(entry.get("ref"), dict) and not entry["ref"].get("namespace"):
            entry["ref"]["namespace"] = namespace


def _ref(ref: Any, path: str, keys: tuple[str, ...] = ("apiVersion", "kind", "name")) -> list[FieldError]:
    if not isinstance(ref, dict):
        return [FieldError(path, "must be an object with apiVersion, kind and name")]
    return [FieldError(f"{path}.{key}", "required") for key in keys
            if not isinstance(ref.get(key), str) or not ref.get(key)]


def sub_problem(sub: Any) -> str | None:
    if not isinstance(sub, str) or not sub:
        return "must be a non-empty subject string"
    if "*" in sub[:-1]:
        return f"{sub!r}: '*' is only allowed as suffix"
    return None


def _one_of(entry: Any, path: str, first: str, second: str) -> list[FieldError]:
    if not isinstance(entry, dict):
        return [FieldError(path, f"must be an object with {first} or {second}")]
    has = [key for key in (first, second) if entry.get(key) not in (None, "")]
    if not has:
        return [FieldError(path, f"expected exactly one of {first} or {second}, got neither")]
    if len(has) == 2:
        return [FieldError(path, f"expected exactly one of {first} or {second}, got both")]
    return []


def validate_event_policy(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors: list[FieldError] = []
    for key in ("to", "from"):
        if spec.get(key) is not None and not isinstance(spec[key], list):
            errors.append(FieldError(f"spec.{key}", "must be a list"))
    to = spec.get("to")
    for i, entry in enumerate(to if isinstance(to, list) else []):
        path = f"spec.to[{i}]"
        problems = _one_of(entry, path, "ref", "selector")
        errors += problems
        if problems:
            continue
        if entry.get("ref") is not None:
            errors += _ref(entry["ref"], f"{path}.ref")
        else:
            selector = entry["selector"]
            errors += _ref(selector, f"{path}.selector", ("apiVersion", "kind"))
            if isinstance(selector, dict):
                rest = {k: v for k, v in selector.items() if k not in ("apiVersion", "kind")}
                errors += selector_api.validate_selector(rest, f"{path}.selector")
    senders = spec.get("from")
    for i, entry in enumerate(senders if isinstance(senders, list) else []):
        path = f"spec.from[{i}]"
        problems = _one_of(entry, path, "ref", "sub")
        errors += problems
        if problems:
            continue
        if entry.get("ref") is not None:
            errors += _ref(entry["ref"], f"{path}.ref")
        elif (problem := sub_problem(entry["sub"])) is not None:
            errors.append(FieldError(f"{path}.sub", problem))
    errors += validate_trigger_filters(None, spec.get("filters"), "spec")
    return errors
