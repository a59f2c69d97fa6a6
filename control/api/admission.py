"""Admission: what a Kubernetes webhook does for Knative, run on every `nerve apply`.

`admit()` looks the manifest's kind up in the registry (control/api/kinds.py), then, for that kind,
checks the fields it knows (its schema), defaults, validates, and for an update checks immutable fields.
Every check runs on what it can: a bad `metadata.name` does not hide a bad `spec.subscriber`. It raises
InvalidResource carrying every field error, so a bad manifest is refused whole and nothing is stored;
otherwise it returns the object with its warnings (unknown fields, fields Nerve does not implement).

Field validation follows kubectl's `--validate` (the API server's `fieldValidation`): `Warn` (default)
reports unknown fields as warnings, `Strict` refuses them, `Ignore` says nothing about them. A field
Nerve knows but does not implement is always a warning: never silently ignored.
"""

from __future__ import annotations

import copy
import enum
import math
from dataclasses import dataclass, field
from typing import Any

from control.api import kinds, schema
from control.api.meta import DEFAULT_NAMESPACE, validate_metadata
from control.api.schema import FieldNotice
from core.errors import FieldError, InvalidResource

# Fields the server owns: accepted in a manifest (kubectl get -o yaml | nerve apply -f -) and replaced.
_SERVER_OWNED = ("uid", "generation", "creationTimestamp", "resourceVersion", "selfLink", "managedFields",
                 "deletionTimestamp", "deletionGracePeriodSeconds")


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    default_broker_class: str = "MTChannelBasedBroker"
    default_channel_kind: str = "InMemoryChannel"
    """A Channel's channelTemplate when no default-ch-webhook ConfigMap gives one (control/api/channel.py)."""
    channel_defaults: str = ""
    """The stored ConfigMap knative-eventing/default-ch-webhook's `default-ch-config`, as the request saw it."""


class FieldValidation(enum.Enum):
    """kubectl's --validate=strict|warn|ignore, as the API server's fieldValidation names them."""

    STRICT = "Strict"
    WARN = "Warn"
    IGNORE = "Ignore"

    @classmethod
    def parse(cls, value: str) -> FieldValidation:
        for member in cls:
            if member.value.lower() == value.lower():
                return member
        raise InvalidResource([FieldError("fieldValidation", f"{value!r} must be Strict, Warn or Ignore")])


@dataclass(frozen=True, slots=True)
class Admitted:
    obj: dict[str, Any]
    kind: kinds.Kind
    warnings: list[FieldNotice] = field(default_factory=list)


class Refused(InvalidResource):
    """InvalidResource that also carries the warnings found on the way (an unknown field often explains
    a missing one: `spec.subscribr` next to `spec.subscriber: required`)."""

    def __init__(self, errors: list[FieldError], warnings: list[FieldNotice]) -> None:
        super().__init__(errors)
        self.warnings = warnings


def identify(manifest: Any) -> kinds.Kind:
    if not isinstance(manifest, dict):
        raise InvalidResource([FieldError("", "a manifest must be a mapping with apiVersion, kind and metadata")])
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    missing = [FieldError(key, "required") for key in ("apiVersion", "kind") if not manifest.get(key)]
    if missing:
        raise InvalidResource(missing)
    found = kinds.for_manifest(str(api_version), str(kind))
    if found is None:
        raise InvalidResource([kinds.manifest_problem(str(api_version), str(kind))])
    return found


_SCALARS = frozenset({str, int, float, bool, type(None)})
"""JSON's scalars, by exact type (a subclass is copied by copy.deepcopy, as anything else)."""


class _TooDeep(Exception):
    """Raised out of `_copied` given a `limit`, at the first object or list that deep or deeper."""


def _copied(value: Any, depth: int = 0, limit: float = math.inf) -> Any:
    """A deep copy, quicker than copy.deepcopy for what a manifest is made of (JSON's dicts, lists and
    scalars: no memo to keep, no dispatch per type); anything else is copy.deepcopy'd as before.

    With a `limit` (schema.MAX_DEPTH) it also makes schema.too_deep's check on the way: the copy visits every
    value anyway, so the manifest is not walked a second time for its depth (10,000 Triggers: 10,000 walks
    fewer). An object or list at depth `limit` or more raises _TooDeep before anything under it is visited,
    so the recursion stays within `limit` whatever the manifest."""
    cls = type(value)
    if cls is dict:
        if depth >= limit:
            raise _TooDeep
        # A scalar child is taken as it is here, without a call for it (most of a manifest's values).
        return {k: v if type(v) in _SCALARS else _copied(v, depth + 1, limit) for k, v in value.items()}
    if cls is list:
        if depth >= limit:
            raise _TooDeep
        return [v if type(v) in _SCALARS else _copied(v, depth + 1, limit) for v in value]
    if cls in _SCALARS:
        return value
    if limit != math.inf and schema.too_deep(value, int(limit) - depth) is not None:  # a dict subclass, say
        raise _TooDeep
    return copy.deepcopy(value)


def _pruned(obj: dict[str, Any], kind: kinds.Kind) -> dict[str, Any]:
    copied: dict[str, Any] = _copied(obj)
    schema.check(copied, kind.schema, prune=True)
    return copied


def copied_within_depth(manifest: Any) -> Any:
    """A copy of the manifest, refused if it nests past schema.MAX_DEPTH (before anything recursive looks at
    it), naming the first place that does (schema.too_deep)."""
    try:
        return _copied(manifest, 0, schema.MAX_DEPTH)
    except _TooDeep:
        path = schema.too_deep(manifest) or ""
        raise Refused([FieldError(path, f"nested more than {schema.MAX_DEPTH} levels deep")], []) from None


def admit(manifest: Any, old: dict[str, Any] | None, settings: AdmissionSettings,
          validation: FieldValidation = FieldValidation.WARN, kind: kinds.Kind | None = None) -> Admitted:
    """`kind` is identify(manifest) when the caller has it already (None: identified here)."""
    if kind is None:
        kind = identify(manifest)
    obj: dict[str, Any] = copied_within_depth(manifest)
    if obj.get("apiVersion") != kind.api_version:
        kind.convert(obj)
        obj["apiVersion"] = kind.api_version
    # Walked before the defaults (what the user wrote), unless they are known to add nothing it would find.
    one_walk = kind.defaults_add_only_known
    notices = [] if one_walk else schema.check(obj, kind.schema)
    errors = validate_metadata(obj.get("metadata"), namespaced=kind.namespaced)
    if not isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {}  # reported above; the kind's own rules still run on the rest
    meta = obj["metadata"]
    if kind.namespaced:
        meta["namespace"] = meta.get("namespace") or DEFAULT_NAMESPACE
    else:
        meta.pop("namespace", None)
    obj.pop("status", None)
    for key in _SERVER_OWNED:
        meta.pop(key, None)
    kind.default(obj, settings)
    errors += kind.validate(obj)
    if old is None:
        errors += kind.validate_create(obj)
    else:
        # Compared as stored, both pruned: an unknown field is no change (it is dropped), whether it is in
        # this manifest or was stored before Nerve knew to drop it.
        errors += kind.validate_update(_pruned(old, kind), _pruned(obj, kind))
    kind_notices = kind.notices(obj)
    # One walk: the notices and the pruning together, after every rule has seen the manifest unpruned.
    notices = schema.check(obj, kind.schema, prune=True) + kind_notices if one_walk else notices + kind_notices
    # A kind's own rule may refuse an unknown field where dropping it would change the meaning (a
    # misspelt filter dialect would widen the filter); then the error says it and the notice goes.
    refused = {e.path for e in errors}
    notices = [n for n in notices if not (n.unknown and n.path in refused)]
    if validation is FieldValidation.STRICT:
        errors += [FieldError(n.path, "unknown field") for n in notices if n.unknown]
    if validation is not FieldValidation.WARN:
        notices = [n for n in notices if not n.unknown]
    if errors:
        raise Refused(errors, notices)
    # What is stored is what Nerve reads: unknown fields are pruned, as the Kubernetes API server prunes
    # the fields a CRD's schema does not know (after the defaults: they could add one).
    if not one_walk:
        schema.check(obj, kind.schema, prune=True)
    return Admitted(obj, kind, notices)
