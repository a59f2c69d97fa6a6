"""ObjectMeta rules shared by every kind: names, namespaces, labels and annotations."""

from __future__ import annotations

import re
from typing import Any

from core.errors import FieldError

# Used with fullmatch: `$` would also match before a trailing newline (`default\n` became a namespace).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DEFAULT_NAMESPACE = "default"


def mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a mapping, else an empty one: for rules that run on what a bad manifest has."""
    return value if isinstance(value, dict) else {}


def validate_metadata(meta: Any, *, namespaced: bool) -> list[FieldError]:
    if not isinstance(meta, dict):
        return [FieldError("metadata", "required: an object with at least a name")]
    errors: list[FieldError] = []
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        errors.append(FieldError("metadata.name", "required"))
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
        errors.append(
            FieldError("metadata.name", f"{name!r} must be lower-case letters, digits, '-' and '.' (RFC 1123)")
        )
    namespace = meta.get("namespace")
    if namespaced and namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not DNS1123_LABEL.fullmatch(namespace)
    ):
        errors.append(FieldError("metadata.namespace", f"{namespace!r} must be an RFC 1123 label"))
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            errors.append(FieldError(f"metadata.{key}", "must be a map of strings to strings"))
    return errors
