"""The addresses of an addressable Nerve serves (Brokers, channels): `status.address` and `status.addresses[]`
as Knative's reconcilers write them under each `transport-encryption` mode (`ev:pkg/reconciler/broker/
broker.go`, `inmemorychannel.go`):

    disabled     address: the http URL (as before; no addresses[])
    permissive   address: the http one (name "http"); addresses: [https (name "https", CACerts), http]
    strict       address: the https one; addresses: [https]

The https URL is `--ingress-https-base-url` plus the same path; CACerts is the PEM of `--ingress-ca-certs`
(in `nerve up`, the CA it generated), left out when none is configured (the ingress's certificate is then
one the clients' trust store verifies). Also here: the feature flags in force for a reconcile pass.
"""

from __future__ import annotations

import os
from typing import Any

from control.reconcilers.snapshot import Snapshot
from control.settings import ControlSettings
from core.features import FEATURES_CONFIGMAP, FEATURES_NAMESPACE, Features, resolve

_CA_CACHE: dict[str, tuple[int, str]] = {}


def features_of(snapshot: Snapshot, settings: ControlSettings) -> Features:
    """The flags in force: the live ConfigMap knative-eventing/config-features, then the command line's."""
    configmap = snapshot.get("ConfigMap", FEATURES_NAMESPACE, FEATURES_CONFIGMAP)
    data = configmap.get("data") if configmap is not None else None
    return resolve(data if isinstance(data, dict) else None, settings.feature_overrides)


def ingress_ca(settings: ControlSettings) -> str | None:
    """The PEM of --ingress-ca-certs, re-read when the file changes (a renewed CA); None without one."""
    path = settings.ingress_ca_certs
    if not path:
        return None
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    cached = _CA_CACHE.get(path)
    if cached is None or cached[0] != mtime:
        with open(path, encoding="utf-8") as pem:
            cached = (mtime, pem.read())
        _CA_CACHE[path] = cached
    return cached[1] or None


def addressable(path: str, settings: ControlSettings, features: Features) -> dict[str, Any]:
    """`address` (and `addresses`) of the resource the ingress serves at `path` (`/<ns>/<name>`)."""
    http_url = settings.ingress_base_url.rstrip("/") + path
    if not features.tls:
        return {"address": {"url": http_url}}
    https: dict[str, Any] = {"name": "https", "url": settings.ingress_https_base_url.rstrip("/") + path}
    ca = ingress_ca(settings)
    if ca:
        https["CACerts"] = ca
    if features.http_allowed:
        http = {"name": "http", "url": http_url}
        return {"address": dict(http), "addresses": [https, http]}
    return {"address": dict(https), "addresses": [dict(https)]}
