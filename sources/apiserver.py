"""ApiServerSource: every change of a watched kind becomes an event, as Knative's apiserver adapter sends it.

In embedded mode the "API server" is Nerve's own resource store, handed over as a `core.watch.ResourceWatch`
(SourceContext.watch): `nerve apply` and `nerve delete` of any kind Nerve stores are the changes. Per
`resources[]` entry the adapter lists the kind, then watches it from the list's resourceVersion, and for
each change of an object that is in a watched namespace, matches the entry's label selector, and is
controlled by the `owner` kind (when one is set), sends

- type `dev.knative.apiserver.resource.add|update|delete` (mode Resource, data: the whole object) or
  `dev.knative.apiserver.ref.add|update|delete` (mode Reference, data: the ObjectReference
  {kind, namespace, name, apiVersion});
- `source` the API server URL (here the control API's), `subject` `/apis/<apiVersion>/namespaces/<ns>/
  <plural>/<name>` (the plural guessed from the kind as Kubernetes' UnsafeGuessKindToResource does),
  extensions `kind`, `apiversion`, `name`, `namespace`, `datacontenttype: application/json`;
- through sources/emit.py's Emitter: a fresh id, time, the ceOverrides, Kn-Namespace, and the source
  delivery's retries (Knative: 50 ms exponential, 5 retries), one event at a time in the order of the changes.

What Knative's adapter does and this one does too (`ev:pkg/adapter/apiserver/adapter.go`, `delegate.go`):
- Objects that exist when the source starts produce nothing: Knative's reflector lists into a store whose
  Replace is a no-op, so only changes after that list become events. The same after a watch that fell
  too far behind (Expired): the kind is listed again and the changes missed in between are not replayed.
- Every change that gives the object a new resourceVersion is an update, status-only ones included. A
  write that changes nothing gives none (Nerve's store, like the API server, keeps the old version), so
  Nerve's reconcile passes, which rewrite a status only when it changed, make no update storm; and no
  status of Nerve's changes per event sent, so a source that watches its own kind (or its sink's) does not
  feed itself.
- The label selector filters as a server-side watch does: an update that makes an object match is an add,
  one that makes it stop matching a delete. The owner filter is applied to each change after that, on the
  object's controller ownerReference.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from core.contract import Source
from core.errors import BackendError
from core.events import AttrValue, Event
from core.filters import EventFilter, compile_trigger_filter
from core.kube import guess_plural
from core.selector import LabelSelector, namespace_labels
from core.supervisor import Supervisor
from core.watch import Expired, ResourceWatch, WatchEvent
from sources.base import Adapter, SourceContext, SourceWatch, part_name
from sources.emit import Emitter

log = logging.getLogger("nerve.sources.apiserver")

Change = Literal["add", "update", "delete"]
NO_STORE = ("this sources service has no resource store to watch (it runs apart from control); "
            "an ApiServerSource runs in embedded mode (`nerve up`), or on Kubernetes with `--watch kubernetes`")


def event_type(mode: str, change: Change) -> str:
    """Knative's six types (`ev:pkg/apis/sources/constants.go`)."""
    return f"dev.knative.apiserver.{'resource' if mode == 'Resource' else 'ref'}.{change}"


def self_link(api_version: str, kind: str, namespace: str, name: str) -> str:
    """Knative's createSelfLink: core kinds are `/apis/v1/...`; an apiVersion that is a group without a
    version gets `/versionUnknown`."""
    version = api_version
    if "." in version and "/" not in version:
        version += "/versionUnknown"
    return f"/apis/{version}/namespaces/{namespace}/{guess_plural(kind)}/{name}"


def object_reference(obj: dict[str, Any]) -> dict[str, str]:
    """corev1.ObjectReference as Go marshals it: kind, namespace (omitted when empty), name, apiVersion."""
    meta = obj["metadata"]
    ref = {"kind": str(obj.get("kind", ""))}
    if meta.get("namespace"):
        ref["namespace"] = str(meta["namespace"])
    ref["name"] = str(meta.get("name", ""))
    ref["apiVersion"] = str(obj.get("apiVersion", ""))
    return ref


def build_event(emitter: Emitter, change: Change, obj: dict[str, Any], *, mode: str, source: str) -> Event:
    meta = obj["metadata"]
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "")
    data = obj if mode == "Resource" else object_reference(obj)
    # Copied as extensions so that Triggers can filter on them (Knative's makeEvent).
    extensions: dict[str, AttrValue] = {"kind": kind, "apiversion": api_version, "name": name,
                                        "namespace": namespace}
    return emitter.event(event_type(mode, change), source, orjson.dumps(data), content_type="application/json",
                         subject=self_link(api_version, kind, namespace, name), extensions=extensions)


def controlled_by(obj: dict[str, Any], owner: dict[str, Any] | None) -> bool:
    """Knative's controllerFilter: with an `owner`, only objects whose controller ownerReference is of
    that apiVersion (when set) and kind (when set)."""
    if not owner:
        return True
    refs = obj["metadata"].get("ownerReferences") or []
    controller = next((r for r in refs if isinstance(r, dict) and r.get("controller")), None)
    if controller is None:
        return False
    return ((not owner.get("apiVersion") or owner["apiVersion"] == controller.get("apiVersion"))
            and (not owner.get("kind") or owner["kind"] == controller.get("kind")))


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])


def _reads(source: Source) -> tuple[bytes, ...]:
    """What the watches depend on: a change here restarts them; the sink, delivery and ceOverrides update
    in place."""
    config = source.config
    return tuple(orjson.dumps(config.get(key), option=orjson.OPT_SORT_KEYS) for key in (
        "resources", "mode", "owner", "filters", "namespaces", "namespaceSelector", "allNamespaces", "source",
        "serviceAccountName"))


@dataclass(slots=True)
class _Watched:
    """One `resources[]` entry: its kind and selector, where its watch has got to, what matches now."""

    kind: str
    namespaced: bool
    selector: LabelSelector
    namespace: str | None
    """The one namespace watched, or None for all (then each change's namespace is checked)."""
    resource_version: str = ""
    matching: set[tuple[str, str]] = field(default_factory=set)

    def matches(self, obj: dict[str, Any]) -> bool:
        return self.selector.matches(obj["metadata"].get("labels"))


class ApiServerSourceAdapter:
    def __init__(self, source: Source, context: SourceContext) -> None:
        self._source = source
        self._watch: ResourceWatch | None = context.watch
        self._watches = context.watches
        self._own: SourceWatch | None = None
        """The watch made for this source alone (`--watch kubernetes`), closed when it stops."""
        self._emitter = Emitter(source, context.deliverer, default_timeout_s=context.settings.default_timeout_s)
        self._filter: EventFilter = compile_trigger_filter(None, source.config.get("filters") or None)
        self._supervisors: list[Supervisor] = []

    @property
    def source(self) -> Source:
        return self._source

    def must_restart(self, source: Source) -> bool:
        return _reads(source) != _reads(self._source)

    def update(self, source: Source) -> None:
        self._source = source
        self._emitter.update(source)

    def _entries(self) -> list[_Watched]:
        config = self._source.config
        namespaces = config.get("namespaces")
        # A list: each of those namespaces watched on its own (the source's own when namespaceSelector is
        # unset; on a cluster, those the selector matched at reconcile time, as Knative's adapter makes one
        # watch per namespace, so a Role in each is enough). None: every namespace, each change checked
        # against the selector (embedded: a namespace labelled or created later is covered at once).
        each: list[str | None] = [str(n) for n in namespaces] if isinstance(namespaces, list) else [None]
        out = []
        for r in config.get("resources") or ():
            namespaced = bool(r.get("namespaced", True))
            for namespace in each if namespaced else [None]:
                out.append(_Watched(str(r["kind"]), namespaced, LabelSelector.from_json(r.get("selector")),
                                    namespace))
        return out

    async def start(self) -> None:
        if self._watch is None and self._watches is not None:
            self._own = await self._watches.for_source(self._source)
            self._watch = self._own
        if self._watch is None:
            raise BackendError(NO_STORE)
        entries = self._entries()
        try:
            for entry in entries:
                await self._list(entry)  # before start returns: a change right after `nerve apply` is seen
        except BaseException:
            await self.stop()  # the watch made for this start goes with it; the service starts it anew
            raise
        for entry in entries:
            several = sum(e.kind == entry.kind for e in entries) > 1  # one kind watched in several namespaces
            where = f"@{entry.namespace}" if several else ""
            supervisor = Supervisor(f"{part_name(self._source)}#{entry.kind}{where}",
                                    functools.partial(self._follow, entry))
            supervisor.start()
            self._supervisors.append(supervisor)

    async def stop(self) -> None:
        supervisors, self._supervisors = self._supervisors, []
        await asyncio.gather(*(s.stop() for s in supervisors))
        own, self._own = self._own, None
        if own is not None:
            self._watch = None
            await own.close()

    async def _list(self, entry: _Watched) -> None:
        assert self._watch is not None
        listed = await self._watch.list(entry.kind, entry.namespace)
        # Knative's reflector lists into a store whose Replace does nothing: no events for what exists.
        entry.resource_version = listed.resource_version
        entry.matching = {_key(o) for o in listed.items if entry.matches(o)}

    async def _follow(self, entry: _Watched) -> None:
        assert self._watch is not None
        while True:
            changes = self._watch.watch(entry.kind, entry.namespace, resource_version=entry.resource_version)
            try:
                async for change in changes:
                    # Past this change before it is handled: one that fails is logged, not retried for ever.
                    entry.resource_version = str(change.object["metadata"].get("resourceVersion",
                                                                               entry.resource_version))
                    await self._handle(entry, change)
                return  # the store closed: the process is stopping
            except Expired as exc:
                log.warning("%s: the watch of %s fell behind (%s); listing again, changes in between are not sent",
                            part_name(self._source), entry.kind, exc)
                await self._list(entry)
            finally:
                close = getattr(changes, "aclose", None)  # an async generator's watch ends now, not at GC
                if close is not None:
                    await close()

    async def _in_namespace(self, entry: _Watched, namespace: str) -> bool:
        config = self._source.config
        if not entry.namespaced or entry.namespace is not None or config.get("allNamespaces"):
            return True
        selector = config.get("namespaceSelector")
        if selector is None:
            return namespace in (config.get("namespaces") or ())
        assert self._watch is not None
        # Read now, not cached: a Namespace created or relabelled just before this change counts already.
        found = await self._watch.get("Namespace", "", namespace)
        return LabelSelector.from_json(selector).matches(namespace_labels(namespace, found))

    def _change(self, entry: _Watched, change: WatchEvent) -> Change | None:
        """The change as a watch filtered by the label selector reports it (entering = add, leaving = delete)."""
        key, now = _key(change.object), entry.matches(change.object)
        was = key in entry.matching
        if change.type == "DELETED":
            entry.matching.discard(key)
            return "delete" if was or now else None
        if now:
            entry.matching.add(key)
        else:
            entry.matching.discard(key)
        if change.type == "ADDED":
            return "add" if now else None
        if was and now:
            return "update"
        return "add" if now else ("delete" if was else None)

    async def _handle(self, entry: _Watched, change: WatchEvent) -> None:
        obj = change.object
        if not await self._in_namespace(entry, str(obj["metadata"].get("namespace") or "")):
            return
        kind = self._change(entry, change)
        if kind is None or not controlled_by(obj, self._source.config.get("owner")):
            return
        config = self._source.config
        event = build_event(self._emitter, kind, obj, mode=str(config.get("mode", "Reference")),
                            source=str(config.get("source", "")))
        if not self._filter.matches(event.attributes):
            return
        await self._emitter.send(event)


def api_server_source(source: Source, context: SourceContext) -> Adapter:
    return ApiServerSourceAdapter(source, context)
