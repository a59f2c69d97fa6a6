"""ApiServerSources on a Kubernetes API server (`--watch kubernetes`): a `core.watch.ResourceWatch` on the
official `kubernetes` client, acting as the ServiceAccount each source names.

Knative runs one adapter Deployment per ApiServerSource under `spec.serviceAccountName`, so what a source
sees is what that account may see. Nerve's sources service is one process for every source; it gets the
same effect from the TokenRequest API: for each source it asks the API server for a token of
`<namespace>/<serviceAccountName>` (`POST .../serviceaccounts/<name>/token`, what a Pod's projected token
is) and lists and watches with that token alone. A Role the account lacks is a 403 from the API server,
exactly as for Knative's adapter; a ServiceAccount that does not exist is a 404 and the source does not
start (retried with back-off, /readyz names it). The service's own account needs only `create` on
`serviceaccounts/token`. Tokens last an hour and are requested again when 80 % of that has passed.

The watch (`KubernetesWatch`): `list` returns the objects with the list's resourceVersion; `watch` streams
from a resourceVersion in server-side windows of a few seconds (so a stopped watch's thread ends within one
window), asks for BOOKMARK events and moves its version on with them (so a quiet watch resumes from a recent
version, not from one the API server has compacted away), and turns 410 Gone into `Expired`, on which the
adapter lists again (sources/apiserver.py). The client is synchronous: each call runs in a worker thread.

The `kubernetes` client is imported only here, and this module only when `--watch kubernetes` is chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from core.contract import Source
from core.errors import BackendError, NotFound
from core.watch import Expired, ObjectList, ResourceWatch, WatchEvent

log = logging.getLogger("nerve.sources.kube")

T = TypeVar("T")
WINDOW_SECONDS = 5
"""One server-side watch window: the bound on how long a closed watch's thread lingers."""
TOKEN_SECONDS = 3600
REFRESH_AT = 0.8
DEFAULT_SERVICE_ACCOUNT = "default"
_CORE = {"Namespace": "v1"}
"""Kinds the adapter reads for itself (a namespaceSelector's Namespaces), beside the source's resources."""


def _reason(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes | str):
        with contextlib.suppress(ValueError):
            decoded = json.loads(body)
            if isinstance(decoded, dict) and decoded.get("message"):
                return str(decoded["message"])
    return str(exc.reason or exc)


def _translated(exc: ApiException) -> Exception:
    if exc.status == 410:
        return Expired(_reason(exc))
    if exc.status == 404:
        return NotFound(_reason(exc))
    # 401/403 (the account may not), 5xx, refused connections: the source is down until they change.
    return BackendError(f"the Kubernetes API server answered {exc.status}: {_reason(exc)}")


class KubernetesWatch(ResourceWatch):
    """The ResourceWatch of one source: its kinds by the apiVersions its `resources[]` name."""

    def __init__(self, api_client: client.ApiClient, versions: dict[str, str]) -> None:
        self._client = api_client
        self._versions = {**_CORE, **versions}
        self._dynamic: dynamic.DynamicClient | None = None

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except ApiException as exc:
            raise _translated(exc) from exc
        except OSError as exc:  # urllib3's connection errors are OSErrors
            raise BackendError(f"cannot reach the Kubernetes API server: {exc}") from exc

    async def _resource(self, kind: str) -> Any:
        if self._dynamic is None:
            self._dynamic = await self._call(lambda: dynamic.DynamicClient(self._client))
        version = self._versions.get(kind)
        if version is None:
            raise BackendError(f"kind {kind!r} is not among this source's resources")
        dyn = self._dynamic
        try:
            return await self._call(lambda: dyn.resources.get(api_version=version, kind=kind))
        except dynamic.exceptions.ResourceNotFoundError as exc:
            raise BackendError(f"the API server serves no {version} {kind}") from exc

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        api = await self._resource(kind)
        try:
            found = await self._call(lambda: api.get(name=name, namespace=namespace if api.namespaced else None))
        except NotFound:
            return None
        return dict(found.to_dict())

    async def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        api = await self._resource(kind)
        listed = (await self._call(lambda: api.get(namespace=namespace if api.namespaced else None))).to_dict()
        items = sorted(listed.get("items") or [], key=lambda o: (o["metadata"].get("namespace") or "",
                                                                o["metadata"]["name"]))
        for item in items:  # a list's items carry neither; a watch's objects do
            item.setdefault("apiVersion", api.group_version)
            item.setdefault("kind", api.kind)
        return ObjectList(items, str(listed["metadata"]["resourceVersion"]))

    async def watch(self, kind: str, namespace: str | None = None, *,
                    resource_version: str | None = None) -> AsyncIterator[WatchEvent]:
        api = await self._resource(kind)
        assert self._dynamic is not None
        dyn, loop = self._dynamic, asyncio.get_running_loop()
        queue: asyncio.Queue[WatchEvent | Exception] = asyncio.Queue()
        stopped = threading.Event()

        def stream() -> None:
            version = resource_version
            try:
                while not stopped.is_set():
                    watcher = watch.Watch()
                    for event in dyn.watch(api, namespace=namespace if api.namespaced else None,
                                           resource_version=version, timeout=WINDOW_SECONDS, watcher=watcher,
                                           allow_watch_bookmarks=True):
                        if stopped.is_set():
                            watcher.stop()
                            return
                        obj = event["raw_object"]
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] == "BOOKMARK":
                            continue  # only the version moves on
                        loop.call_soon_threadsafe(queue.put_nowait, WatchEvent(event["type"], obj))
            except ApiException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, _translated(exc))
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting side, which raises it
                loop.call_soon_threadsafe(queue.put_nowait, BackendError(f"the watch of {kind} failed: {exc}"))

        thread = threading.Thread(target=stream, name=f"kube-watch-{kind}", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stopped.set()

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


@dataclass
class _Token:
    value: str
    refresh_after: datetime.datetime


class ServiceAccountWatches:
    """Makes each ApiServerSource's watch, as its ServiceAccount (sources.base.WatchProvider)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._client = api_client
        """The sources service's own credentials: used for TokenRequests only."""

    @classmethod
    def from_kubeconfig(cls, path: str = "") -> ServiceAccountWatches:
        """From a kubeconfig file, or in a Pod from its own ServiceAccount when `path` is empty."""
        if not path:
            config.load_incluster_config()
            return cls(client.ApiClient())
        return cls(config.new_client_from_config(config_file=path))

    @property
    def host(self) -> str:
        """The API server's URL: every event's `source`, as Knative's adapter sets it."""
        return str(self._client.configuration.host)

    def _request_token(self, namespace: str, name: str) -> _Token:
        core = client.CoreV1Api(self._client)
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=TOKEN_SECONDS))
        answer = core.create_namespaced_service_account_token(name, namespace, request).status
        if answer is None or not answer.token:
            raise ApiException(status=500, reason=f"the TokenRequest for {namespace}/{name} returned no token")
        issued = datetime.datetime.now(datetime.UTC)
        expires = answer.expiration_timestamp
        lifetime = (expires - issued) if expires is not None else datetime.timedelta(seconds=TOKEN_SECONDS)
        return _Token(str(answer.token), issued + lifetime * REFRESH_AT)

    def _client_as(self, namespace: str, name: str, token: _Token) -> client.ApiClient:
        base = self._client.configuration
        conf = client.Configuration()
        # The API server's address and CA, never the service's own client certificate: with one, the API
        # server would authenticate the service rather than the ServiceAccount.
        conf.host, conf.ssl_ca_cert, conf.verify_ssl = base.host, base.ssl_ca_cert, base.verify_ssl
        conf.tls_server_name = getattr(base, "tls_server_name", None)
        conf.proxy = base.proxy
        conf.api_key = {"authorization": token.value}
        conf.api_key_prefix = {"authorization": "Bearer"}
        lock = threading.Lock()

        def refresh(configuration: client.Configuration) -> None:
            nonlocal token
            with lock:
                if datetime.datetime.now(datetime.UTC) < token.refresh_after:
                    return
                try:
                    token = self._request_token(namespace, name)
                except ApiException as exc:  # the old token may still be good: the next call tries again
                    log.warning("ServiceAccount %s/%s: a new token was refused: %s", namespace, name, _reason(exc))
                    return
                configuration.api_key = {"authorization": token.value}

        conf.refresh_api_key_hook = refresh  # type: ignore[assignment]  # the client declares it as None
        return client.ApiClient(conf)

    async def for_source(self, source: Source) -> KubernetesWatch:
        """The watch of `source`, authenticated as its `serviceAccountName` in its namespace."""
        cfg = source.config
        namespace = source.reference.namespace
        name = str(cfg.get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT)
        try:
            token = await asyncio.to_thread(self._request_token, namespace, name)
        except ApiException as exc:
            raise BackendError(f"no token for ServiceAccount {namespace}/{name}: {_reason(exc)}") from exc
        except OSError as exc:
            raise BackendError(f"cannot reach the Kubernetes API server: {exc}") from exc
        versions = {str(r["kind"]): str(r["apiVersion"]) for r in cfg.get("resources") or ()}
        return KubernetesWatch(self._client_as(namespace, name, token), versions)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
