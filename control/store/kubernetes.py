"""The resource store on a Kubernetes API server: the first piece of the operator (docs/kubernetes.md).

The store seam (control/store/base.py) is shaped on the Kubernetes API, so this is a thin mapping onto the
official `kubernetes` client's dynamic API: a kind is found in the registry (control/api/kinds.py), its
objects are the CRDs' custom resources (helm/nerve/crds) or the cluster's own kinds, and every promise of
the seam is the API server's own: resourceVersions, Conflict on a stale one, `update_status` through the
status subresource, finalizers holding a deleted object, watches from a listed version and 410 Gone.

The client is synchronous, so each call runs in a worker thread (`asyncio.to_thread`); a watch streams in
a thread of its own, in short server-side windows so that closing it ends the thread within one window.

Watches ask for bookmarks, so a window of a quiet kind resumes from a recent version; a version etcd has
compacted away is `Expired`, and the operator lists again (control/operator/watch_loop.py).

One difference the seam allows: an `update` without a resourceVersion is unconditional in the seam, while
the API server refuses an unconditional PUT of a custom resource; the store reads the current version
and retries on a Conflict, which is what unconditional means.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import orjson
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from control.api import kinds
from control.store.base import ResourceStore
from core.errors import Conflict, FieldError, InvalidResource, NotFound
from core.watch import Expired, ObjectList, WatchEvent

T = TypeVar("T")
_WINDOW_SECONDS = 5
"""How long one server-side watch window lasts: the bound on how long a closed watch's thread lingers."""
_UNCONDITIONAL_RETRIES = 5


def _status(exc: Exception) -> int:
    return int(getattr(exc, "status", 0) or 0)


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes | str):
        with contextlib.suppress(ValueError):
            decoded = json.loads(body)
            if isinstance(decoded, dict) and decoded.get("message"):
                return str(decoded["message"])
    return str(getattr(exc, "reason", "") or exc)


def _raw(response: Any) -> dict[str, Any]:
    """The JSON body of an unserialized answer (`serialize=False`): the dynamic client's own ResourceInstance
    wraps every field in an object, which made a LIST of 100 Triggers take a quarter of a second."""
    decoded: dict[str, Any] = orjson.loads(response.data)
    return decoded


def _translated(exc: Exception) -> Exception:
    """The seam's error for an API server's answer (core/errors.py), the message kept."""
    status = _status(exc)
    if status == 404:
        return NotFound(_message(exc))
    if status == 409:
        return Conflict(_message(exc))
    if status == 410:
        return Expired(_message(exc))
    if status == 422:
        return InvalidResource([FieldError("", _message(exc))])
    return exc


class KubernetesStore(ResourceStore):
    def __init__(self, api_client: client.ApiClient) -> None:
        self._client = api_client
        self._dynamic = dynamic.DynamicClient(api_client)

    @property
    def api_client(self) -> client.ApiClient:
        """The client this store talks through, for the operator's own calls (Leases, ConfigMaps)."""
        return self._client

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> KubernetesStore:
        """From a kubeconfig file, or in a Pod from its ServiceAccount when `path` is None."""
        if path is None:
            config.load_incluster_config()
            return cls(client.ApiClient())
        return cls(config.new_client_from_config(config_file=path))

    # -------------------------------------------------------------------------------------- plumbing

    def _resource(self, kind: str) -> tuple[Any, bool]:
        entry = kinds.lookup(kind)
        if entry is None:
            raise NotFound(f'the server doesn\'t have a resource type "{kind}"')
        return self._dynamic.resources.get(api_version=entry.api_version, kind=entry.kind), entry.namespaced

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except ApiException as exc:
            raise _translated(exc) from exc

    # ------------------------------------------------------------------------------------------ reads

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        api, namespaced = self._resource(kind)
        try:
            found = await self._call(lambda: _raw(api.get(name=name, namespace=namespace if namespaced else None,
                                                          serialize=False)))
        except NotFound:
            return None
        return found

    async def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        api, namespaced = self._resource(kind)
        listed = await self._call(lambda: _raw(api.get(namespace=namespace if namespaced else None, serialize=False)))
        items = sorted(listed.get("items") or [], key=lambda o: (o["metadata"].get("namespace") or "",
                                                                o["metadata"]["name"]))
        for item in items:  # a list's items carry neither, a watch's and a get's objects do
            item.setdefault("apiVersion", listed.get("apiVersion", "").removesuffix("List") or api.group_version)
            item.setdefault("kind", api.kind)
        return ObjectList(items, str(listed["metadata"]["resourceVersion"]))

    async def watch(self, kind: str, namespace: str | None = None, *,
                    resource_version: str | None = None) -> AsyncIterator[WatchEvent]:
        api, namespaced = self._resource(kind)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[WatchEvent | Exception] = asyncio.Queue()
        stopped = threading.Event()

        def stream() -> None:
            version = resource_version
            try:
                while not stopped.is_set():
                    watcher = watch.Watch()
                    for event in self._dynamic.watch(api, namespace=namespace if namespaced else None,
                                                     resource_version=version, timeout=_WINDOW_SECONDS,
                                                     watcher=watcher, allow_watch_bookmarks=True):
                        if stopped.is_set():
                            watcher.stop()
                            return
                        obj = event["raw_object"]
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] == "BOOKMARK":
                            # Only a version to resume the next window from: a quiet kind's watch then
                            # resumes from a recent version rather than one etcd has compacted away (410).
                            continue
                        loop.call_soon_threadsafe(queue.put_nowait, WatchEvent(event["type"], obj))
            except ApiException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, _translated(exc))
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting side, which raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        thread = threading.Thread(target=stream, name=f"watch-{kind}", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stopped.set()

    # ----------------------------------------------------------------------------------------- writes

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        api, namespaced = self._resource(obj["kind"])
        namespace = obj["metadata"].get("namespace") if namespaced else None
        return await self._call(lambda: _raw(api.create(body=obj, namespace=namespace, serialize=False)))

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._replace(obj, status=False)

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._replace(obj, status=True)

    async def _replace(self, obj: dict[str, Any], *, status: bool) -> dict[str, Any]:
        api, namespaced = self._resource(obj["kind"])
        target = api.subresources["status"] if status else api
        namespace = obj["metadata"].get("namespace") if namespaced else None
        unconditional = not obj["metadata"].get("resourceVersion")
        for _ in range(_UNCONDITIONAL_RETRIES):
            body = obj
            if unconditional:
                current = await self.get(obj["kind"], namespace or "", obj["metadata"]["name"])
                if current is None:
                    raise NotFound(f'{obj["kind"]} "{obj["metadata"]["name"]}" not found')
                body = {**obj, "metadata": {**obj["metadata"],
                                            "resourceVersion": current["metadata"]["resourceVersion"]}}
            def put(body: dict[str, Any] = body) -> dict[str, Any]:
                return _raw(target.replace(body=body, name=body["metadata"]["name"], namespace=namespace,
                                           serialize=False))

            try:
                replaced = await self._call(put)
            except Conflict:
                if unconditional:
                    continue
                raise
            return replaced
        raise Conflict(f'{obj["kind"]} "{obj["metadata"]["name"]}" kept changing; try again')

    async def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        api, namespaced = self._resource(kind)
        await self._call(lambda: api.delete(name=name, namespace=namespace if namespaced else None))
        # Still there: finalizers hold it, marked with its deletionTimestamp.
        return await self.get(kind, namespace, name)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    # ---------------------------------------------- what ApiServerSources ask (reconcilers.apiserversource)

    @property
    def host(self) -> str:
        """The API server's URL."""
        return str(self._client.configuration.host)

    async def allowed(self, user: str, groups: Sequence[str], *, namespace: str, verb: str, group: str,
                      resource: str) -> bool:
        """One SubjectAccessReview."""
        review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=user, groups=[*groups], resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, group=group, resource=resource)))
        api = client.AuthorizationV1Api(self._client)
        answer = await self._call(lambda: api.create_subject_access_review(review))
        return bool(answer.status is not None and answer.status.allowed)

