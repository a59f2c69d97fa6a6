"""Destination -> URL, as Knative's addressable resolver does it.

`uri` alone is used as it is. A `ref` resolves to the referenced object's `status.address.url`; a
Kubernetes `v1/Service` has no such status. Without Kubernetes, a Service ref resolves, in this order:

1. to the stored Service's `nerve.dev/url` annotation, when it has one;
2. to the local workload its `spec.selector` matches (embedded mode: a Pod with a loopback port,
   `http://127.0.0.1:<port>`; the Service's `targetPort` is that process's `PORT`);
3. through `--service-url-template` (`http://{name}.{namespace}.svc.cluster.local` on a network that
   has cluster DNS, `http://{name}:8080` under compose), when one is configured;
4. otherwise not at all: Unresolvable, so the Trigger, Subscription or source says
   `SubscriberResolved`/`SinkProvided` False instead of going Ready against an address nothing serves.

A relative `uri` next to a `ref` is resolved against the ref's URL (RFC 3986).

An addressable's address is picked as Knative's resolver picks it (`selectAddress`): the one of
`status.addresses[]` named by `ref.address`, else the first of `status.addresses[]` (https first under
transport-encryption permissive), else `status.address`. The Destination's own `CACerts` wins over the
address's (`resolve_address`).

Resolution reads a snapshot of the store taken for the reconcile pass, so it is pure and synchronous.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    def live(self, kind: str) -> list[dict[str, Any]]: ...


def _selected_port(service: dict[str, Any], pods: list[dict[str, Any]]) -> int:
    """The loopback port of the first unfinished Pod (oldest, then by name) the Service's selector matches."""
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        return 0
    namespace = service["metadata"].get("namespace", "")

    def serves(pod: dict[str, Any]) -> bool:
        meta, status = pod["metadata"], pod.get("status") or {}
        labels = meta.get("labels") or {}
        return (meta.get("namespace") == namespace and all(labels.get(k) == v for k, v in selector.items())
                and bool(status.get("port")) and status.get("phase") not in ("Succeeded", "Failed"))

    matches = sorted(filter(serves, pods), key=lambda p: (p["metadata"].get("creationTimestamp", ""),
                                                          p["metadata"]["name"]))
    return int(matches[0]["status"]["port"]) if matches else 0


@dataclass(frozen=True, slots=True)
class Resolved:
    """A Destination resolved: the URL, and the PEM its https certificate is verified against."""

    url: str
    ca_certs: str | None = None


def _pick_address(obj: dict[str, Any], name: str | None, what: str) -> dict[str, Any]:
    status = obj.get("status") or {}
    addresses = [a for a in status.get("addresses") or [] if isinstance(a, dict)]
    if name:
        for address in addresses:
            if address.get("name") == name:
                return address
        raise Unresolvable("ReferenceError", f"{what} has no address named {name!r} in status.addresses")
    if addresses:
        return addresses[0]
    single = status.get("address")
    return single if isinstance(single, dict) else {}


class Resolver:
    def __init__(self, store: Lookup, service_url_template: str) -> None:
        self._store = store
        self._template = service_url_template

    def resolve(self, dest: dict[str, Any], namespace: str) -> str:
        return self.resolve_address(dest, namespace).url

    def resolve_address(self, dest: dict[str, Any], namespace: str) -> Resolved:
        """The URL and CACerts of `dest`; Unresolvable says why not."""
        ref = dest.get("ref")
        uri = dest.get("uri")
        own_ca = dest.get("CACerts") or None
        if ref is None:
            return Resolved(str(uri), own_ca)
        base = self._resolve_ref(ref, namespace)
        url = urljoin(base.url, str(uri)) if uri else base.url
        return Resolved(url, own_ca or base.ca_certs)

    def _resolve_ref(self, ref: dict[str, Any], namespace: str) -> Resolved:
        ns = ref.get("namespace") or namespace
        name, kind_name, api_version = ref["name"], ref["kind"], ref["apiVersion"]
        if kind_name == "Service" and api_version in ("v1", "serving.knative.dev/v1"):
            return Resolved(self._service(ns, name))
        kind = kinds.for_manifest(api_version, kind_name)
        if kind is None:
            raise Unresolvable("ReferenceError", f"{api_version}/{kind_name} {ns}/{name} is not an addressable kind "
                                                 "Nerve knows")
        obj = self._store.get(kind.kind, ns, name)
        if obj is None:
            raise Unresolvable("ReferenceError", f"{kind_name} {ns}/{name} does not exist")
        address = _pick_address(obj, ref.get("address"), f"{kind_name} {ns}/{name}")
        url = address.get("url")
        if not url:
            raise Unresolvable("ReferenceError", f"{kind_name} {ns}/{name} has no status.address.url yet")
        return Resolved(str(url), address.get("CACerts") or None)

    def _service(self, ns: str, name: str) -> str:
        service = self._store.get("Service", ns, name)
        if service is not None:
            url = (service.get("metadata", {}).get("annotations") or {}).get(URL_ANNOTATION)
            if url:
                return str(url)
            port = _selected_port(service, self._store.live("Pod"))
            if port:
                return f"http://127.0.0.1:{port}"
        if self._template:
            return self._template.format(name=name, namespace=ns)
        if service is None:
            raise Unresolvable("ServiceNotFound", f"Service {ns}/{name} does not exist (nor is a "
                                                  "--service-url-template configured)")
        selector = ",".join(f"{k}={v}" for k, v in ((service.get("spec") or {}).get("selector") or {}).items())
        raise Unresolvable("ServiceNotFound", f"Service {ns}/{name} selects no running local workload "
                                              f"(selector {selector or '<none>'}), has no {URL_ANNOTATION} "
                                              "annotation, and no --service-url-template is configured")
