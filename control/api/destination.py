"""Knative's Destination duck type (`ref` and/or `uri`) and KReference: validation and defaulting."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from control.api.meta import DNS1123_LABEL, DNS1123_SUBDOMAIN
from core.errors import FieldError
from core.tls import pem_problem

_PLAIN_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\[\]\x00-\x20\x7f][^\[\]\x00-\x20\x7f]*")
"""A URI urlsplit is sure to give a scheme and a host: a scheme, `://`, then no character urlsplit treats
specially anywhere (whitespace and controls it strips or drops, brackets it checks as IPv6)."""


def scheme_and_host(uri: str) -> tuple[bool, bool]:
    """Whether urlsplit finds a scheme and a host in `uri`, without its cost for the common `http://host/...`
    (10,000 Triggers are 10,000 destinations checked); anything else is urlsplit's (and its ValueError)."""
    if uri.isascii() and _PLAIN_ABSOLUTE.fullmatch(uri):
        return True, True
    parts = urlsplit(uri)
    return bool(parts.scheme), bool(parts.netloc)


def default_destination(dest: Any, namespace: str) -> None:
    if isinstance(dest, dict) and isinstance(dest.get("ref"), dict):
        dest["ref"].setdefault("namespace", namespace)


def validate_kreference(ref: Any, path: str, namespace: str, *, other_namespace: bool = False) -> list[FieldError]:
    if not isinstance(ref, dict):
        return [FieldError(path, "must be an object with apiVersion, kind and name")]
    errors = [
        FieldError(f"{path}.{key}", "required")
        for key in ("apiVersion", "kind", "name")
        if not isinstance(ref.get(key), str) or not ref.get(key)
    ]
    # A ref names an object as Kubernetes names them; anything else (`svc\n`) would only resolve to a bad URL.
    name = ref.get("name")
    if isinstance(name, str) and name and (len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name)):
        errors.append(FieldError(f"{path}.name", f"{name!r} must be lower-case letters, digits, '-' and '.' "
                                 "(RFC 1123)"))
    ref_ns = ref.get("namespace")
    if ref_ns not in (None, "") and (not isinstance(ref_ns, str) or len(ref_ns) > 63
                                     or not DNS1123_LABEL.fullmatch(ref_ns)):
        errors.append(FieldError(f"{path}.namespace", f"{ref_ns!r} must be an RFC 1123 label"))
        return errors
    if not other_namespace and ref_ns not in (None, "", namespace):
        errors.append(
            FieldError(f"{path}.namespace", f"{ref_ns!r} differs from the resource's namespace {namespace!r}; "
                       "cross-namespace references are not allowed")
        )
    return errors


def validate_destination(dest: Any, path: str, namespace: str) -> list[FieldError]:
    if not isinstance(dest, dict):
        return [FieldError(path, "must be an object with ref and/or uri")]
    ref, uri = dest.get("ref"), dest.get("uri")
    if ref is None and not uri:
        return [FieldError(path, "expected at least one of ref or uri, got neither")]
    errors: list[FieldError] = []
    if ref is not None:
        errors += validate_kreference(ref, f"{path}.ref", namespace)
    if uri is not None:
        if not isinstance(uri, str):
            return [*errors, FieldError(f"{path}.uri", "must be a string")]
        scheme, host = scheme_and_host(uri)
        if ref is not None and scheme:
            errors.append(FieldError(f"{path}.uri", "an absolute URI is not allowed when ref is present"))
        if ref is None and (not scheme or not host):
            errors.append(FieldError(f"{path}.uri", f"{uri!r} must be an absolute URI with a scheme and host"))
    errors += validate_ca_certs(dest.get("CACerts"), f"{path}.CACerts")
    return errors


def validate_ca_certs(value: object, path: str) -> list[FieldError]:
    """Knative's Destination.CACerts: one or more PEM CERTIFICATE blocks the sender verifies the target with."""
    if value is None:
        return []
    why = pem_problem(value)
    return [] if why is None else [FieldError(path, why)]
