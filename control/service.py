"""The control plane's operations: apply, get, list, delete — each followed by a reconcile.

`apply` admits every manifest first, then writes them all (one transaction where the store has them,
see store/base.py `write_all`), so a directory with one bad document stores nothing. It answers only
after the reconcile has published the new contract, so a Trigger reported Ready is already consuming
in embedded mode.

`delete` is the API server's: an object with finalizers is marked (metadata.deletionTimestamp) and
stays visible, being deleted, until its reconciler has cleaned up the backend. The reconcile the call
waits for normally does that, so the object is gone when `nerve delete` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from control.api import channel, kinds
from control.api.admission import AdmissionSettings, FieldValidation, Refused, admit, identify
from control.api.meta import DEFAULT_NAMESPACE, mapping, with_generated_name
from control.api.schema import FieldNotice
from control.reconcilers import gc_pause
from control.reconcilers.controller import Reconciler
from control.store.base import (
    SERVER_METADATA,
    Key,
    ResourceStore,
    Write,
    get_all,
    is_deleting,
    user_view,
    write_all,
)
from core.errors import Conflict, FieldError, InvalidResource, NotFound

log = logging.getLogger("nerve.control")


@dataclass(frozen=True, slots=True)
class Applied:
    items: list[dict[str, Any]]
    warnings: list[FieldNotice]


def _identified(manifest: Any) -> tuple[kinds.Kind | None, Key | None]:
    """The manifest's kind and `_key`; None and None for one admission refuses for its kind (it says why)."""
    try:
        kind = identify(manifest)
    except InvalidResource:
        return None, None
    return kind, _key(kind, manifest)


def _key(kind: kinds.Kind, obj: dict[str, Any]) -> Key | None:
    """Where the stored object is, or None when the manifest's name or namespace is not even a string
    (admission then refuses it; a list must not reach the store as a key)."""
    meta = mapping(obj.get("metadata"))
    namespace = (meta.get("namespace") or DEFAULT_NAMESPACE) if kind.namespaced else ""
    name = meta.get("name", "")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    return kind.kind, namespace, name


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
        await self.reconciler.stop()

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync_seconds)
            try:
                await self.reconciler.reconcile()
            except Exception:  # a resync must never die; the next one tries again
                log.exception("periodic reconcile failed")

    async def apply(self, manifests: list[Any], validation: FieldValidation = FieldValidation.WARN) -> Applied:
        with gc_pause.paused():
            return await self._apply(manifests, validation)

    async def _apply(self, manifests: list[Any], validation: FieldValidation) -> Applied:
        admitted: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        errors: list[FieldError] = []
        warnings: list[FieldNotice] = []
        admission = channel.with_defaults_from(self._admission, await self.store.get(
            "ConfigMap", channel.DEFAULTS_NAMESPACE, channel.DEFAULTS_CONFIGMAP))
        # What is stored of every manifest is read first, all at once (get_all): no write happens before the
        # last one is admitted, so each sees what it would have seen read on its own turn.
        named = [with_generated_name(manifest) for manifest in manifests]
        identified = [_identified(manifest) for manifest in named]
        stored = await get_all(self.store, [key for _, key in identified if key is not None])
        for index, (manifest, (kind, key)) in enumerate(zip(named, identified, strict=True)):
            # (The label is made only for a manifest with something to say: 10,000 clean ones need none.)
            try:
                old = stored.get(key) if key is not None else None
                result = admit(manifest, old, admission, validation, kind)  # identified once
            except InvalidResource as exc:
                label = _describe(manifest, index)
                errors += [FieldError(e.path, e.reason, label) for e in exc.errors]
                if isinstance(exc, Refused):
                    warnings += [dataclasses.replace(w, resource=label) for w in exc.warnings]
                continue
            _keep_server_spec(result.kind, old, result.obj)
            admitted.append((result.obj, old))
            admission = channel.with_defaults_from(admission, result.obj)
            if result.warnings:
                label = _describe(manifest, index)
                warnings += [dataclasses.replace(w, resource=label) for w in result.warnings]
        if errors:
            raise Refused(errors, warnings)
        planned = _plan_writes(admitted, self.reconciler.with_finalizer)
        written = iter(await write_all(self.store, [w for w, _ in planned if w is not None]))
        await self.reconciler.reconcile()
        out = []
        for write, outcome in planned:
            obj = next(written) if write is not None else outcome[1]
            out.append({"kind": obj["kind"], "apiVersion": obj["apiVersion"],
                        "namespace": obj["metadata"].get("namespace", ""), "name": obj["metadata"]["name"],
                        "outcome": outcome[0]})
        return Applied(out, warnings)

    async def get(self, kind_name: str, namespace: str, name: str) -> dict[str, Any]:
        kind = self.kind(kind_name)
        obj = await self.store.get(kind.kind, namespace if kind.namespaced else "", name)
        if obj is None:
            raise NotFound(kind.not_found(name))
        return obj

    async def list_resources(self, kind_name: str, namespace: str | None) -> list[dict[str, Any]]:
        kind = self.kind(kind_name)
        return (await self.store.list(kind.kind, namespace if kind.namespaced else None)).items

    async def delete(self, kind_name: str, namespace: str, name: str) -> None:
        kind = self.kind(kind_name)
        try:
            await self.store.delete(kind.kind, namespace if kind.namespaced else "", name)
        except NotFound:
            raise NotFound(kind.not_found(name)) from None
        await self.reconciler.reconcile()

    @staticmethod
    def kind(name: str) -> kinds.Kind:
        try:
            return kinds.resolve(name)
        except kinds.UnknownKind as exc:
            raise NotFound(exc.message, field="kind") from None


def _keep_server_spec(kind: kinds.Kind, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """Carry over the spec fields a controller writes that the manifest leaves out (admission refused any
    change to them), so re-applying the same manifest is `unchanged`."""
    old_spec, new_spec = mapping((old or {}).get("spec")), new.get("spec")
    if isinstance(new_spec, dict):
        for key in kind.server_spec:
            if key in old_spec and key not in new_spec:
                new_spec[key] = old_spec[key]


def _plan_writes(
    admitted: list[tuple[dict[str, Any], dict[str, Any] | None]],
    on_create: Callable[[dict[str, Any]], dict[str, Any]] = lambda obj: obj,
) -> list[tuple[Write | None, tuple[str, dict[str, Any]]]]:
    """Create, update (carrying the stored object's server fields and resourceVersion, so a change
    made since admission read it is a Conflict) or nothing, for each admitted object in order.
    `on_create` gives a new object what the reconciler would write on it first (its finalizer).

    A document repeated in one request updates what the earlier one wrote, as a sequence of
    `kubectl apply` calls would; every check happens here, before any write.
    """
    planned: list[tuple[Write | None, tuple[str, dict[str, Any]]]] = []
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for obj, stored in admitted:
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        repeated = key in latest
        old = latest.get(key, stored)
        if old is not None and is_deleting(old):
            raise Conflict(f'{obj["kind"]} "{key[2]}" is being deleted (waiting for its backend clean-up); '
                           "apply it again once it is gone")
        if old is None:
            obj = latest[key] = on_create(obj)
            planned.append((Write("create", obj), ("created", obj)))
            continue
        if user_view(old) == user_view(obj):
            planned.append((None, ("unchanged", old)))
            continue
        new = {**obj, "metadata": dict(obj["metadata"])}
        meta, old_meta = new["metadata"], old["metadata"]
        for field in SERVER_METADATA - {"finalizers"}:
            if field in old_meta:
                meta[field] = old_meta[field]
        # Finalizers belong to the controllers that set them; a manifest may add its own.
        extra = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
        if old_meta.get("finalizers") or extra:
            meta["finalizers"] = [*(old_meta.get("finalizers") or []), *extra]
        if stored is not old:
            meta.pop("resourceVersion", None)  # the earlier document of this request wrote it
        latest[key] = new
        planned.append((Write("update" if stored is not None or repeated else "create", new), ("configured", new)))
    return planned


def _describe(manifest: Any, index: int) -> str:
    """How an error names the manifest it is about: kind/namespace/name, or its position."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("metadata"), dict):
        return f"document {index + 1}"
    meta = manifest["metadata"]
    parts = [str(manifest.get("kind") or "?"), meta.get("namespace"), meta.get("name")]
    return "/".join(str(p) for p in parts if p) or f"document {index + 1}"
