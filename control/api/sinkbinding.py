"""SinkBinding (sources.knative.dev/v1; v1beta1 accepted): a sink and ceOverrides bound to workloads.

`ev:pkg/apis/sources/v1/sinkbinding_*.go`: the Source duck (`sink`, `ceOverrides`) plus a `subject`, a
tracker.Reference (`pkg:tracker/interface.go`): `apiVersion` and `kind` of the PodSpecable objects to bind,
and either their `name` or a label `selector`, never both; `namespace`, when set, is the binding's own
(a binding never reaches into another namespace). What a binding does to the workloads it matches is
control/reconcilers/resources/sinkbinding.py's; here are only the rules a manifest obeys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import schema, selector, source
from control.api.schema import LEAF
from core.errors import FieldError

if TYPE_CHECKING:
    pass

SUBJECT = schema.obj({
    "apiVersion": LEAF, "kind": LEAF, "namespace": LEAF, "name": LEAF, "selector": selector.SCHEMA,
})
SCHEMA = schema.resource(schema.obj({**source.DUCK, "subject": SUBJECT}))
# The CRD's additionalPrinterColumns, as the seed prints them.
COLUMNS = source.COLUMNS


default_sink_binding = source.default_source


def validate_subject(subject: Any, namespace: str, path: str = "spec.subject") -> list[FieldError]:
    """tracker.Reference.Validate: apiVersion and kind, exactly one of name and selector, the namespace."""
    if subject is None:
        return [FieldError(path, "required: the apiVersion, kind and name or selector of the workloads to bind")]
    if not isinstance(subject, dict):
        return [FieldError(path, "must be an object with apiVersion, kind and name or selector")]
    errors: list[FieldError] = []
    for key in ("apiVersion", "kind"):
        value = subject.get(key)
        if not isinstance(value, str) or not value:
            errors.append(FieldError(f"{path}.{key}", "required"))
    subject_ns = subject.get("namespace")
    if subject_ns is not None and subject_ns != namespace:
        errors.append(FieldError(f"{path}.namespace", f"{subject_ns!r} must be the SinkBinding's namespace "
                                                      f"{namespace!r} (or unset)"))
    name, match = subject.get("name"), subject.get("selector")
    if name is not None and match is not None:
        errors.append(FieldError(path, "expected exactly one, got both: name, selector"))
    elif name is None and match is None:
        errors.append(FieldError(path, "expected exactly one, got neither: name, selector"))
    elif name is not None and (not isinstance(name, str) or not name):
        errors.append(FieldError(f"{path}.name", "must be a non-empty string"))
    elif match is not None:
        errors += selector.validate_selector(match, f"{path}.selector")
    return errors


def validate_sink_binding(obj: dict[str, Any]) -> list[FieldError]:
    namespace, spec = obj["metadata"]["namespace"], obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "required: an object with subject and sink")]
    return [*validate_subject(spec.get("subject"), namespace), *source.validate_duck(spec, namespace)]
