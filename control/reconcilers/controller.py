"""One reconcile pass over every kind: statuses for the user, the contract for the data plane.

A pass reads the store once (a snapshot: a laptop or a small install holds hundreds of resources,
not millions), then:

1. deletes objects whose owners are all gone (ownerReferences, garbage.py);
2. reconciles the local workloads (Deployments, Jobs, CronJobs, Pods: embedded mode), then each live
   Broker (topic, status), Trigger (egress, status) and KafkaSource (probe,
   status, source entry), each kind by its own reconciler, with pure builders computing the outcome;
   then each SinkBinding (sink, status: what it injects is read by the next round's workloads) and
   ContainerSource (its Deployment and SinkBinding, its status from theirs); then each Sequence and
   Parallel (their generated Channels and Subscriptions, their status);
3. publishes the contract built from the live objects, when its content changed, with the next
   generation;
4. finalizes the objects being deleted, now that the published contract no longer names them: the
   data plane has stopped reading their groups before the groups and topics are deleted. Clean-up
   that fails keeps the finalizer (status Ready=False, reason Deleting) and is retried every pass, also
   after a restart of control, since the deletion mark lives in the store.

A pass that removed or deleted something, or lost a write race, is followed by another round at once
(a few at most), so `nerve delete` answers with the object and its children gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from channels.registry import BackendPool
from control.api import kinds
from control.api import source as source_api
from control.api.broker import BROKER_CLASSES
from control.api.trigger import DEPENDENCY_ANNOTATION, dependency_of
from control.conditions import cond, with_ready
from control.reconcilers import finalizers, garbage, gc_pause
from control.reconcilers.apiserversource import ApiServerSourceReconciler, ClusterAccess
from control.reconcilers.broker import BrokerReconciler
from control.reconcilers.channel import Channels
from control.reconcilers.containersource import ContainerSourceReconciler
from control.reconcilers.eventpolicy import EventPolicyReconciler, authz_of
from control.reconcilers.eventtype import EventTypeReconciler
from control.reconcilers.kafkasource import KafkaSourceReconciler
from control.reconcilers.parallel import ParallelReconciler
from control.reconcilers.pingsource import PingSourceReconciler
from control.reconcilers.probe import KafkaProbes
from control.reconcilers.resources import trigger as trigger_build
from control.reconcilers.resources.address import features_of
from control.reconcilers.resources.trigger import dependency_view
from control.reconcilers.sequence import SequenceReconciler
from control.reconcilers.served import Served, own, reference
from control.reconcilers.sinkbinding import SinkBindingReconciler
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.trigger import TriggerReconciler
from control.reconcilers.workloads import WorkloadReconciler
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from control.settings import ControlSettings
from control.store.base import ResourceStore, grouped, is_deleting
from core.contract import Contract, Egress, OidcConfig, Resource, Source, Workload
from core.errors import BackendError
from core.features import Features
from core.oidc import PublishedKeys

log = logging.getLogger("nerve.control")

ContractSink = Callable[[Contract], Awaitable[None]]
MAX_ROUNDS = 5


def deleting_status(obj: dict[str, Any], why: str) -> dict[str, Any]:
    """An object whose clean-up is pending says so: Ready=False, reason Deleting, and why it waits."""
    status = dict(obj.get("status") or {})
    old = [c for c in status.get("conditions", []) if c.get("type") not in ("Ready", "BackendCleanedUp")]
    waiting = cond("BackendCleanedUp", False, "Deleting", f"waiting to clean up the backend: {why}")
    status["conditions"] = with_ready([waiting, *(dict(c) for c in old)], status.get("conditions"))
    return status


def _names_a_dependency(trigger: dict[str, Any]) -> bool:
    # The annotation's key looked for first: a pass asks this of every Trigger twice, and 10,000 of them carry
    # none (dependency_of parses the annotation, and one that does not parse names nothing).
    annotations = trigger["metadata"].get("annotations")
    return isinstance(annotations, dict) and DEPENDENCY_ANNOTATION in annotations and not is_deleting(trigger) \
        and dependency_of(trigger) is not None


def _dependencies(snapshot: Snapshot) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """What Triggers' DependencyReady reads of every source (none when no live Trigger names a dependency)."""
    if not any(_names_a_dependency(t) for t in snapshot.all("Trigger")):
        return {}
    return {(kind.kind, o["metadata"]["namespace"], o["metadata"]["name"]): dependency_view(o)
            for kind in kinds.in_category(source_api.CATEGORY) for o in snapshot.all(kind.kind)}


_CHANNEL_KINDS = frozenset(kind.kind for kind in kinds.CHANNEL_KINDS)
_FILTERED = ("Broker", "Channel", *sorted(_CHANNEL_KINDS), "Trigger", "Subscription")


def serves_all(served: Served) -> bool:
    """Whether the pass reconciles every Broker, channel, Trigger and Subscription (no --broker-classes or
    --channel-kinds narrowing it to some)."""
    return served.broker_classes >= frozenset(BROKER_CLASSES) and served.channel_kinds >= _CHANNEL_KINDS


def keep_own(snapshot: Snapshot, served: Served) -> None:
    """Leave out of the pass the Brokers, channels, Triggers and Subscriptions another controller serves
    (control/reconcilers/served.py): the pass writes nothing of theirs. Brokers and channels first, so a
    Trigger or Subscription is judged by what it names."""
    if serves_all(served):
        return
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for kind in _FILTERED:
        kept = []
        for obj in snapshot.all(kind):
            meta = obj["metadata"]
            namespace = meta.get("namespace", "")
            ref = reference(obj)
            referenced = seen.get((ref[0], namespace, ref[1])) if ref is not None else None
            if own(obj, served, _CHANNEL_KINDS, referenced):
                kept.append(obj)
            seen[(kind, namespace, meta["name"])] = obj
        snapshot.by_kind[kind] = kept


class Reconciler:
    def __init__(
        self,
        store: ResourceStore,
        pool: BackendPool,
        settings: ControlSettings,
        sink: ContractSink,
        *,
        contract: Contract | None = None,
        probe_timeout_s: float = 2.0,
        api_url: str = "",
        sources_watch_store: bool = False,
        on_cluster: bool = False,
        issuer: PublishedKeys | None = None,
    ) -> None:
        """`api_url` is the control API's URL (an ApiServerSource's event `source`); `sources_watch_store`
        says the sources service runs in this process with the store handed to it (`nerve up`).
        `on_cluster` says the store is a Kubernetes API server (control/store/kubernetes.py): its own
        controllers run Deployments, Jobs, CronJobs and Pods and its garbage collector follows
        ownerReferences (to kinds Nerve does not list, such as ReplicaSets), so the pass does neither."""
        self._on_cluster = on_cluster
        self._store = store
        self._settings = settings
        self._served = Served.parse(settings.broker_classes, settings.channel_kinds)
        self._sink = sink
        self._lock = asyncio.Lock()
        self._probes = KafkaProbes(pool, probe_timeout_s)
        self.brokers = BrokerReconciler(pool, settings)
        self.triggers = TriggerReconciler(pool, settings)
        self.kafka_sources = KafkaSourceReconciler(pool, self._probes)
        self.ping_sources = PingSourceReconciler()
        # On a cluster ApiServerSources watch the API server itself (sources --watch kubernetes).
        cluster = store if on_cluster and isinstance(store, ClusterAccess) else None
        self.api_server_sources = ApiServerSourceReconciler(source_url=api_url, watch_available=sources_watch_store,
                                                            cluster=cluster)
        self.channels = Channels(pool, settings)
        self.sequences = SequenceReconciler()
        self.parallels = ParallelReconciler()
        self.sink_bindings = SinkBindingReconciler(cluster=store if on_cluster else None,
                                                   selection_mode=settings.sink_binding_selection_mode)
        self.container_sources = ContainerSourceReconciler(on_cluster=on_cluster)
        self.workloads = WorkloadReconciler(local=settings.local_workloads)
        self.eventtypes = EventTypeReconciler()
        self.event_policies = EventPolicyReconciler(issuer)
        self.contract = contract or Contract()
        self.features = Features()
        """Knative's feature flags in force this pass (config-features, then the command line's): builders
        read them from here, and the contract carries them to the data plane."""
        self._wake: asyncio.TimerHandle | None = None
        self._woken: asyncio.Task[Contract] | None = None
        self._serves_all = serves_all(self._served)
        self._finalized_kinds = frozenset(r.kind for r in self._finalizing())
        """The kinds whose reconciler adds BACKEND_CLEANUP to every live object first thing (and finalizes)."""

    def _finalizing(self) -> tuple[Any, ...]:
        # Triggers and sources before Brokers: a Trigger's group is deleted while its topic still exists
        # (Subscriptions before their channels likewise).
        return (self.triggers, self.kafka_sources, self.brokers, *self.channels.finalizing)

    def with_finalizer(self, obj: dict[str, Any]) -> dict[str, Any]:
        """`obj`, about to be created, with the backend clean-up finalizer its first pass would add (before
        anything else of it: see finalizers.py), so that a new Trigger costs the store one write fewer.
        Only for the kinds whose reconciler adds it to every live object, and only when the pass reconciles
        every object (`serves_all`): with --broker-classes / --channel-kinds a Trigger is judged by the
        Broker it names, and one another controller serves must never carry Nerve's finalizer (nothing
        would remove it); the pass then adds it as before."""
        if obj.get("kind") not in self._finalized_kinds or not self._serves_all or not finalizers.needs_adding(obj):
            return obj
        meta = obj["metadata"]
        return {**obj, "metadata": {**meta, "finalizers": [*(meta.get("finalizers") or []),
                                                           finalizers.BACKEND_CLEANUP]}}

    async def reconcile(self) -> Contract:
        async with self._lock:
            with gc_pause.paused():
                for _ in range(MAX_ROUNDS):
                    if not await self._round():
                        break
            self._schedule_wake()
            return self.contract

    def _schedule_wake(self) -> None:
        """A CronJob's next tick (or a Job's back-off) comes between resyncs: reconcile again right then."""
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        at = self.workloads.wake_at
        if at is None:
            return
        loop = asyncio.get_running_loop()
        delay = max((at - datetime.now(UTC)).total_seconds(), 0.0) + 0.05
        self._wake = loop.call_later(delay, self._woken_up)

    def _woken_up(self) -> None:
        self._wake = None
        self._woken = asyncio.create_task(self._reconcile_logged(), name="control-wake")

    async def _reconcile_logged(self) -> Contract:
        try:
            return await self.reconcile()
        except Exception:  # the next resync tries again
            log.exception("scheduled reconcile failed")
            return self.contract

    async def stop(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        if self._woken is not None:
            self._woken.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._woken
        await self._probes.stop()

    async def _round(self) -> bool:
        # The pass's statuses and finalizers (two writes for each new Trigger) go in one commit.
        with grouped(self._store):
            return await self._round_grouped()

    async def _round_grouped(self) -> bool:
        writes = Writes(self._store)
        snapshot = await Snapshot.load(self._store, [kind.kind for kind in kinds.KINDS])
        keep_own(snapshot, self._served)
        self.features = features_of(snapshot, self._settings)
        authz = authz_of(self.features)
        self.event_policies.hook(writes, snapshot, authz)
        await self.event_policies.reconcile_all(snapshot, writes, authz)
        for orphan in [] if self._on_cluster else garbage.orphans(snapshot.objects()):
            await writes.delete(orphan)
        # Workloads first: a Pod's port is chosen before Service refs to it are resolved.
        workloads = [] if self._on_cluster else await self.workloads.reconcile_all(snapshot, writes)
        resolver = Resolver(snapshot, self._settings.service_url_template)
        resources = await self._reconcile_brokers(snapshot, resolver, writes)
        resources += await self.channels.reconcile_all(snapshot, resolver, writes)
        dependencies = _dependencies(snapshot)
        sources = await self.kafka_sources.reconcile_all(snapshot.live("KafkaSource"), resolver, writes, snapshot)
        sources += await self.ping_sources.reconcile_all(snapshot.live("PingSource"), resolver, writes)
        sources += await self.api_server_sources.reconcile_all(snapshot, resolver, writes)
        await self.sink_bindings.reconcile_all(snapshot.live("SinkBinding"), snapshot, resolver, writes)
        await self.container_sources.reconcile_all(snapshot.live("ContainerSource"), snapshot, writes)
        if _dependencies(snapshot) != dependencies:
            # A Trigger whose knative.dev/dependency names a source was reconciled before the sources, against
            # their old status: another round lets it follow now rather than at the next resync.
            writes.again = True
        await self._reconcile_flows(snapshot, writes)
        # Last: an EventType's status reads its Broker's or channel's, and its registration a source's, as
        # this round left them.
        await self.eventtypes.reconcile_all(snapshot, writes)
        resources, sources = self.event_policies.enrich(resources, sources, snapshot, authz)
        await self._publish(resources, sources, workloads, self.event_policies.oidc_config(authz))
        await self._finalize(snapshot, writes)
        return writes.again

    async def _reconcile_brokers(self, snapshot: Snapshot, resolver: Resolver, writes: Writes) -> list[Resource]:
        brokers = snapshot.live("Broker")
        # Topics are ensured concurrently: one slow backend does not hold up the others.
        entries = await asyncio.gather(*(self.brokers.reconcile(b, snapshot, resolver, writes) for b in brokers))
        by_key = {(b["metadata"]["namespace"], b["metadata"]["name"]): (b, r)
                  for b, r in zip(brokers, entries, strict=True)}
        egresses: dict[str, list[Egress]] = {}
        holders = trigger_build.GroupHolders(snapshot.all("Trigger"), self._settings)
        shared = trigger_build.Shared()  # this pass's (its lastTransitionTime is the pass's)
        self.triggers.forget({t["metadata"].get("uid", "") for t in snapshot.all("Trigger")})
        for trigger in snapshot.live("Trigger"):
            broker, resource = by_key.get((trigger["metadata"]["namespace"], trigger["spec"]["broker"]), (None, None))
            egress = await self.triggers.reconcile(trigger, broker, resource, resolver, writes, snapshot, holders,
                                                   shared)
            if egress is not None and resource is not None:
                egresses.setdefault(resource.uid, []).append(egress)
        return [dataclasses.replace(r, egresses=tuple(egresses.get(r.uid, ()))) for r in entries if r is not None]

    async def _reconcile_flows(self, snapshot: Snapshot, writes: Writes) -> None:
        # After the channels and Subscriptions: a flow's status reads theirs as this round left them.
        for seq in snapshot.live("Sequence"):
            await self.sequences.reconcile(seq, snapshot, writes)
        for par in snapshot.live("Parallel"):
            await self.parallels.reconcile(par, snapshot, writes)

    async def _publish(self, resources: list[Resource], sources: list[Source], workloads: list[Workload],
                       oidc: OidcConfig | None = None) -> None:
        contract = Contract(self.contract.generation, tuple(resources), tuple(sources), tuple(workloads),
                            features=self.features, oidc=oidc)
        if not contract.same_content(self.contract) or self.contract.generation == 0:
            contract = dataclasses.replace(contract, generation=self.contract.generation + 1)
            await self._sink(contract)
            self.contract = contract

    async def _finalize(self, snapshot: Snapshot, writes: Writes) -> None:
        for reconciler in self._finalizing():
            for obj in snapshot.deleting(reconciler.kind):
                if not finalizers.pending(obj):
                    continue
                meta = obj["metadata"]
                try:
                    await reconciler.finalize(obj, snapshot)
                except BackendError as exc:
                    log.warning("%s %s/%s: clean-up waits: %s", obj["kind"], meta.get("namespace"), meta["name"],
                                exc.reason)
                    await writes.status(obj, deleting_status(obj, exc.reason))
                    continue
                except Exception as exc:  # a bug in one clean-up must not stop the others
                    log.exception("%s %s/%s: clean-up failed", obj["kind"], meta.get("namespace"), meta["name"])
                    await writes.status(obj, deleting_status(obj, f"{type(exc).__name__}: {exc}"))
                    continue
                await writes.remove_finalizer(obj)
