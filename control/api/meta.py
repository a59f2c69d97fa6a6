"""ObjectMeta rules shared by every kind: names, namespaces, labels and annotations."""

from __future__ import annotations

import re
import secrets
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


# The Kubernetes API server's generateName (`k8s.io/apiserver/pkg/storage/names`): the prefix cut to 58
# characters, then 5 random characters from an alphabet without vowels (no words) or look-alikes.
_GENERATED_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GENERATED_PREFIX_MAX = 58


def with_generated_name(manifest: Any) -> Any:
    """`manifest` with `metadata.name` made from `metadata.generateName` when it has no name, as the API
    server does on a create: each apply of such a manifest creates a new object. Anything else as it is."""
    if not isinstance(manifest, dict):
        return manifest
    meta = manifest.get("metadata")
    if not isinstance(meta, dict) or meta.get("name") or not isinstance(meta.get("generateName"), str) \
            or not meta["generateName"]:
        return manifest
    suffix = "".join(secrets.choice(_GENERATED_ALPHABET) for _ in range(5))
    return {**manifest, "metadata": {**meta, "name": meta["generateName"][:_GENERATED_PREFIX_MAX] + suffix}}
