"""The control plane's operations: apply, get, list, delete — each followed by a reconcile.

`apply` admits every manifest first and stores them in one transaction, so a directory with one bad
document stores nothing. It answers only after the reconcile has published the new contract, so a
Trigger reported Ready is already consuming in embedded mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from control.api import kinds
from control.api.admission import AdmissionSettings, FieldValidation, Refused, admit, identify
from control.api.meta import DEFAULT_NAMESPACE, mapping
from control.api.schema import FieldNotice
from control.reconciler import Reconciler
from control.store.base import ResourceStore
from core.errors import FieldError, InvalidResource, NotFound

log = logging.getLogger("nerve.control")


@dataclass(frozen=True, slots=True)
class Applied:
    items: list[dict[str, Any]]
    warnings: list[FieldNotice]


def _key(kind: kinds.Kind, obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = mapping(obj.get("metadata"))
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

    async def apply(self, manifests: list[Any], validation: FieldValidation = FieldValidation.WARN) -> Applied:
        admitted: list[dict[str, Any]] = []
        errors: list[FieldError] = []
        warnings: list[FieldNotice] = []
        for index, manifest in enumerate(manifests):
            label = _describe(manifest, index)
            try:
                kind = identify(manifest)
                old = self.store.get(*_key(kind, manifest))
                result = admit(manifest, old, self._admission, validation)
            except InvalidResource as exc:
                errors += [FieldError(e.path, e.reason, label) for e in exc.errors]
                if isinstance(exc, Refused):
                    warnings += [dataclasses.replace(w, resource=label) for w in exc.warnings]
                continue
            admitted.append(result.obj)
            warnings += [dataclasses.replace(w, resource=label) for w in result.warnings]
        if errors:
            raise Refused(errors, warnings)
        results = self.store.put_all(admitted)
        await self.reconciler.reconcile()
        out = []
        for obj, outcome in results:
            kind = identify(obj)
            out.append({"kind": obj["kind"], "apiVersion": obj["apiVersion"], "namespace": _key(kind, obj)[1],
                        "name": obj["metadata"]["name"], "outcome": outcome})
        return Applied(out, warnings)

    def get(self, kind_name: str, namespace: str, name: str) -> dict[str, Any]:
        kind = self.kind(kind_name)
        obj = self.store.get(kind.kind, namespace if kind.namespaced else "", name)
        if obj is None:
            raise NotFound(kind.not_found(name))
        return obj

    def list_resources(self, kind_name: str, namespace: str | None) -> list[dict[str, Any]]:
        kind = self.kind(kind_name)
        return self.store.find(kind.kind, namespace if kind.namespaced else None)

    async def delete(self, kind_name: str, namespace: str, name: str) -> None:
        kind = self.kind(kind_name)
        if not self.store.delete(kind.kind, namespace if kind.namespaced else "", name):
            raise NotFound(kind.not_found(name))
        await self.reconciler.reconcile()

    @staticmethod
    def kind(name: str) -> kinds.Kind:
        try:
            return kinds.resolve(name)
        except kinds.UnknownKind as exc:
            raise NotFound(exc.message, field="kind") from None


def _describe(manifest: Any, index: int) -> str:
    """How an error names the manifest it is about: kind/namespace/name, or its position."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("metadata"), dict):
        return f"document {index + 1}"
    meta = manifest["metadata"]
    parts = [str(manifest.get("kind") or "?"), meta.get("namespace"), meta.get("name")]
    return "/".join(str(p) for p in parts if p) or f"document {index + 1}"
