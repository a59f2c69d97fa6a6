"""The control plane's operations: apply, get, list, delete — each followed by a reconcile.

`apply` admits every manifest first and stores them in one transaction, so a directory with one bad
document stores nothing. It answers only after the reconcile has published the new contract, so a
Trigger reported Ready is already consuming in embedded mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from control.api import kinds
from control.api.admission import AdmissionSettings, admit, identify
from control.api.meta import DEFAULT_NAMESPACE
from control.reconciler import Reconciler
from control.store.base import ResourceStore
from core.errors import FieldError, InvalidResource, NotFound

log = logging.getLogger("nerve.control")


def _key(kind: kinds.Kind, obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    namespace = (meta.get("namespace") or DEFAULT_NAMESPACE) if kind.namespaced else ""
    return kind.kind, namespace, str(meta.get("name", ""))


class ControlService:
    def __init__(self, store: ResourceStore, reconciler: Reconciler, admission: AdmissionSettings,
                 *, resync_seconds: float = 10.0) -> None:
        self.store = store
        self.reconciler = reconciler
        self._admission = admission
        self._resync_seconds = resync_seconds
        self._resync: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reconciler.reconcile()
        self._resync = asyncio.create_task(self._resync_loop(), name="control-resync")

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync
            self._resync = None

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync_seconds)
            try:
                await self.reconciler.reconcile()
            except Exception:  # a resync must never die; the next one tries again
                log.exception("periodic reconcile failed")

    async def apply(self, manifests: list[Any]) -> list[dict[str, Any]]:
        admitted: list[dict[str, Any]] = []
        errors: list[FieldError] = []
        for index, manifest in enumerate(manifests):
            try:
                kind = identify(manifest)
                old = self.store.get(*_key(kind, manifest))
                admitted.append(admit(manifest, old, self._admission))
            except InvalidResource as exc:
                label = _describe(manifest, index)
                errors += [FieldError(e.path, e.reason, label) for e in exc.errors]
        if errors:
            raise InvalidResource(errors)
        results = self.store.put_all(admitted)
        await self.reconciler.reconcile()
        out = []
        for obj, outcome in results:
            kind = identify(obj)
            out.append({"kind": obj["kind"], "apiVersion": obj["apiVersion"], "namespace": _key(kind, obj)[1],
                        "name": obj["metadata"]["name"], "outcome": outcome})
        return out

    def get(self, kind_name: str, namespace: str, name: str) -> dict[str, Any]:
        kind = self.kind(kind_name)
        obj = self.store.get(kind.kind, namespace if kind.namespaced else "", name)
        if obj is None:
            raise NotFound(f'{kind.plural}.{kind.group or "core"} "{name}" not found in namespace "{namespace}"')
        return obj

    def list_resources(self, kind_name: str, namespace: str | None) -> list[dict[str, Any]]:
        kind = self.kind(kind_name)
        return self.store.find(kind.kind, namespace if kind.namespaced else None)

    async def delete(self, kind_name: str, namespace: str, name: str) -> None:
        kind = self.kind(kind_name)
        if not self.store.delete(kind.kind, namespace if kind.namespaced else "", name):
            raise NotFound(f'{kind.plural} "{name}" not found in namespace "{namespace}"')
        await self.reconciler.reconcile()

    @staticmethod
    def kind(name: str) -> kinds.Kind:
        kind = kinds.lookup(name)
        if kind is None:
            raise InvalidResource([FieldError("kind", f"unknown kind {name!r}; Nerve knows {kinds.supported()}")])
        return kind


def _describe(manifest: Any, index: int) -> str:
    """How an error names the manifest it is about: kind/namespace/name, or its position."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("metadata"), dict):
        return f"document {index + 1}"
    meta = manifest["metadata"]
    parts = [str(manifest.get("kind") or "?"), meta.get("namespace"), meta.get("name")]
    return "/".join(str(p) for p in parts if p) or f"document {index + 1}"
