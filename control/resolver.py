"""Destination -> URL, as Knative's addressable resolver does it.

`uri` alone is used as it is. A `ref` resolves to the referenced object's `status.address.url`; a
Kubernetes `v1/Service` has no such status, so it resolves through a URL template (default
`http://{name}.{namespace}.svc.cluster.local`), unless a stored Service carries the annotation
`nerve.dev/url`, which is how embedded mode points a Service at a local process. A relative `uri`
next to a `ref` is resolved against the ref's URL (RFC 3986).

Resolution reads a snapshot of the store taken for the reconcile pass, so it is pure and synchronous.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urljoin

from control.api import kinds

URL_ANNOTATION = "nerve.dev/url"


class Unresolvable(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Lookup(Protocol):
    """Objects by kind, namespace and name, already read: resolving does no I/O (see reconcilers.snapshot)."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...


class Resolver:
    def __init__(self, store: Lookup, service_url_template: str) -> None:
        self._store = store
        self._template = service_url_template

    def resolve(self, dest: dict[str, Any], namespace: str) -> str:
        ref = dest.get("ref")
        uri = dest.get("uri")
        if ref is None:
            return str(uri)
        base = self._resolve_ref(ref, namespace)
        return urljoin(base, str(uri)) if uri else base

    def _resolve_ref(self, ref: dict[str, Any], namespace: str) -> str:
        ns = ref.get("namespace") or namespace
        name, kind_name, api_version = ref["name"], ref["kind"], ref["apiVersion"]
        if kind_name == "Service" and api_version in ("v1", "serving.knative.dev/v1"):
            service = self._store.get("Service", ns, name)
            url = (service or {}).get("metadata", {}).get("annotations", {}).get(URL_ANNOTATION)
            return str(url) if url else self._template.format(name=name, namespace=ns)
        kind = kinds.for_manifest(api_version, kind_name)
        if kind is None:
            raise Unresolvable("ReferenceError", f"{api_version}/{kind_name} {ns}/{name} is not an addressable kind "
                                                 "Nerve knows")
        obj = self._store.get(kind.kind, ns, name)
        if obj is None:
            raise Unresolvable("ReferenceError", f"{kind_name} {ns}/{name} does not exist")
        url = obj.get("status", {}).get("address", {}).get("url")
        if not url:
            raise Unresolvable("ReferenceError", f"{kind_name} {ns}/{name} has no status.address.url yet")
        return str(url)
