"""ApiServerSource (sources.knative.dev/v1; v1beta1 has the same shape): changes of resources -> a sink.

In embedded mode (`nerve up`) the "API server" is Nerve's own resource store: every `nerve apply` and
`nerve delete` of a watched kind is a change (docs/sources.md). The checks are Knative's
(`ev:pkg/apis/sources/v1/apiserver_validation.go`) plus the LabelSelector rules the API server applies
to `resources[].selector` and `namespaceSelector` (control/api/selector.py), checked here at apply time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from control.api import schema, source
from control.api.meta import mapping
from control.api.schema import LEAF, OPEN, FieldNotice, list_of
from control.api.selector import SCHEMA as SELECTOR
from control.api.selector import validate_selector
from core.errors import FieldError
from core.filters import validate_trigger_filters

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

REFERENCE_MODE = "Reference"
RESOURCE_MODE = "Resource"
MODES = (REFERENCE_MODE, RESOURCE_MODE)

SCHEMA = schema.resource(schema.obj({
    **source.DUCK,
    "resources": list_of(schema.obj({"apiVersion": LEAF, "kind": LEAF, "selector": SELECTOR})),
    "owner": schema.obj({"apiVersion": LEAF, "kind": LEAF}),
    "mode": LEAF,
    "serviceAccountName": LEAF,
    "namespaceSelector": SELECTOR,
    "filters": list_of(OPEN),  # Subscriptions API filters, checked by core.filters as a Trigger's are
}))
# Knative's CRD (config/core/resources/apiserversource.yaml): Sink, Age, Ready, Reason after the name.
COLUMNS = source.COLUMNS

# schema.ParseGroupVersion: `version` or `group/version`, at most one '/'.
_GROUP = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_VERSION = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def default_api_server_source(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if not spec.get("mode"):
        spec["mode"] = REFERENCE_MODE
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = "default"
    source.default_duck(spec, meta["namespace"])


def group_version_problem(value: Any, *, required: bool) -> str | None:
    """Why `value` is no `version` or `group/version` (Knative: ErrInvalidValue on apiVersion)."""
    if value is None or value == "":
        return "required" if required else None
    if not isinstance(value, str):
        return f"invalid value: {value!r}; an apiVersion is a string such as v1 or apps/v1"
    group, slash, version = value.rpartition("/")
    if value.count("/") > 1 or not _VERSION.fullmatch(version) or (slash and not _GROUP.fullmatch(group)):
        return f"invalid value: {value!r}; an apiVersion is `version` or `group/version`, such as v1 or apps/v1"
    return None


def _kind_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "required"
    return None


def validate_api_server_source(obj: dict[str, Any]) -> list[FieldError]:
    namespace, spec = obj["metadata"]["namespace"], obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors: list[FieldError] = []
    mode = spec.get("mode")
    if mode not in MODES:
        errors.append(FieldError("spec.mode", f"invalid value: {mode!r}; must be {' or '.join(MODES)}"))
    errors += source.validate_duck(spec, namespace)
    resources = spec.get("resources")
    if not isinstance(resources, list) or not resources:
        errors.append(FieldError("spec.resources", "required: a non-empty list of {apiVersion, kind, selector}"))
        resources = []
    for i, res in enumerate(resources):
        path = f"spec.resources[{i}]"
        if not isinstance(res, dict):
            errors.append(FieldError(path, "must be an object with apiVersion, kind and selector"))
            continue
        for field, problem in (("apiVersion", group_version_problem(res.get("apiVersion"), required=True)),
                               ("kind", _kind_problem(res.get("kind")))):
            if problem:
                errors.append(FieldError(f"{path}.{field}", problem))
        errors += validate_selector(res.get("selector"), f"{path}.selector")
    owner = spec.get("owner")
    if owner is not None:
        if not isinstance(owner, dict):
            errors.append(FieldError("spec.owner", "must be an object with apiVersion and kind"))
        else:
            for field, problem in (("apiVersion", group_version_problem(owner.get("apiVersion"), required=False)),
                                   ("kind", _kind_problem(owner.get("kind")))):
                if problem:
                    errors.append(FieldError(f"spec.owner.{field}", problem))
    errors += validate_selector(spec.get("namespaceSelector"), "spec.namespaceSelector")
    account = spec.get("serviceAccountName")
    if not isinstance(account, str):
        errors.append(FieldError("spec.serviceAccountName", "must be a string"))
    errors += validate_trigger_filters(None, spec.get("filters"), "spec")
    return errors


def notices_api_server_source(obj: dict[str, Any]) -> list[FieldNotice]:
    """A resource of a kind Nerve does not store can never change: said at apply time, not left silent."""
    from control.api import kinds  # kinds imports this module; only the lookup is needed, at call time

    notices: list[FieldNotice] = []
    for i, res in enumerate(mapping(obj.get("spec")).get("resources") or ()):
        res = mapping(res)
        api_version, kind = str(res.get("apiVersion", "")), str(res.get("kind", ""))
        if kinds.for_manifest(api_version, kind) is None:
            notices.append(schema.not_implemented(
                f"spec.resources[{i}]", f"Nerve stores no {api_version}/{kind} objects, so this entry sees no "
                                        f"changes (Nerve stores {kinds.supported()})"))
    return notices

