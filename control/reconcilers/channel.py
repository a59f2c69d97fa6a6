"""The channel reconcilers: a concrete channel's topic (or stream) and status, a generic Channel's backing
channel and mirrored status; on deletion, the topic and its Subscriptions' consumer groups go."""

from __future__ import annotations

import logging
from typing import Any

from channels.registry import BackendPool
from control.api.meta import mapping
from control.reconcilers import topics
from control.reconcilers.garbage import owned_by
from control.reconcilers.resources import channel as build
from control.reconcilers.resources import subscription as subscription_build
from control.reconcilers.resources.address import features_of
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.subscription import SubscriptionReconciler
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from control.settings import ControlSettings
from core.contract import Egress, Resource

log = logging.getLogger("nerve.control")


class ChannelReconciler:
    """One concrete kind: InMemoryChannel, KafkaChannel or NatsJetStreamChannel."""

    def __init__(self, kind: str, pool: BackendPool, settings: ControlSettings) -> None:
        self.kind = kind
        self._pool = pool
        self._settings = settings

    def placement(self, channel: dict[str, Any], snapshot: Snapshot | None = None) -> build.Placement:
        return build.placement(channel, self._settings, self._pool.settings, snapshot)

    async def ensure_topic(self, channel: dict[str, Any], where: build.Placement) -> topics.TopicOutcome:
        """Make the channel's topic exist (the finalizer is on already); what the backend answered."""
        if where.auth_problem is not None:
            # Never made, nor used, without the security its config asked for.
            return topics.TopicOutcome(False, where.auth_problem.reason, where.auth_problem.message)
        return await topics.ensure_topic(self._pool, channel, where.backend, where.connection, where.topic,
                                         where.security)

    async def finalize(self, channel: dict[str, Any], snapshot: Snapshot) -> None:
        """Delete the groups of the Subscriptions on this channel, then its topic (unless --keep-topics or
        another live channel's topic too); BackendError keeps the finalizer for a later pass."""
        where = build.cleanup_placement(channel, self._settings, self._pool.settings, snapshot)
        if where.auth_problem is not None:
            log.warning("%s %s/%s: topic %s left on %s: %s", channel["kind"], channel["metadata"]["namespace"],
                        channel["metadata"]["name"], where.topic.name, where.connection, where.auth_problem.message)
            return  # its Secret is gone: waiting for it would leave the channel undeletable
        backend = await self._pool.get(where.backend, where.connection, where.security)
        for subscription in snapshot.all("Subscription"):
            if subscription_build.on_channel(subscription, channel):
                await backend.delete_group(where.topic.name,
                                           subscription_build.consumer_group(subscription, self._settings))
        if not self._settings.delete_topics or self._shared(channel, where, snapshot):
            return
        await backend.delete_topic(where.topic.name)

    def _shared(self, channel: dict[str, Any], where: build.Placement, snapshot: Snapshot) -> bool:
        """Whether another live channel maps to the same topic (a --channel-topic-template that is not
        injective, or an overrideName): deleting this one must then keep it."""
        for kind in build.CONCRETE:
            for other in snapshot.live(kind):
                if other["metadata"].get("uid") == channel["metadata"].get("uid"):
                    continue
                theirs = build.placement(other, self._settings, self._pool.settings)
                if (theirs.backend, theirs.connection, theirs.topic.name) == \
                        (where.backend, where.connection, where.topic.name):
                    return True
        return False


class GenericChannelReconciler:
    """Channel (messaging.knative.dev/v1): makes its backing channel and mirrors it."""

    kind = "Channel"

    async def ensure_backing(self, channel: dict[str, Any], snapshot: Snapshot, writes: Writes) -> str:
        """Create or update the backing channel; the problem to report, or "" when it is this Channel's."""
        meta, tmpl = channel["metadata"], build.template(channel)
        existing = snapshot.find(str(tmpl.get("kind", "")), meta["namespace"], meta["name"])
        stored = await writes.ensure_child(channel, build.backing_channel(channel), existing, keep=("subscribers",))
        if stored is None and existing is not None and not owned_by(existing, channel):
            return (f"{existing['kind']} {meta['namespace']}/{meta['name']} exists and is not this Channel's; "
                    "delete it or name the Channel differently")
        return ""

    async def write_status(self, channel: dict[str, Any], snapshot: Snapshot, writes: Writes, problem: str) -> None:
        await writes.status(channel, build.channel_status(channel, build.backing_of(channel, snapshot), problem))


class Channels:
    """Channels, the concrete channels and Subscriptions: one step of a pass, as each needs the others'
    status of this very pass (a Subscription the channel's, the channel its Subscriptions')."""

    def __init__(self, pool: BackendPool, settings: ControlSettings) -> None:
        self._settings = settings
        self.concrete = tuple(ChannelReconciler(kind, pool, settings) for kind in build.CONCRETE)
        self.generic = GenericChannelReconciler()
        self.subscriptions = SubscriptionReconciler(pool, settings)

    @property
    def finalizing(self) -> tuple[SubscriptionReconciler | ChannelReconciler, ...]:
        """Who cleans up on deletion, in order: a Subscription's group before its channel's topic."""
        return (self.subscriptions, *self.concrete)

    async def reconcile_all(self, snapshot: Snapshot, resolver: Resolver, writes: Writes) -> list[Resource]:
        """Every channel's contract entry, with its Subscriptions' egresses."""
        problems = {ch["metadata"]["uid"]: await self.generic.ensure_backing(ch, snapshot, writes)
                    for ch in snapshot.live("Channel")}
        candidates: list[tuple[ChannelReconciler, dict[str, Any], build.Placement]] = []
        for reconciler in self.concrete:
            for obj in snapshot.live(reconciler.kind):
                # The finalizer goes on before the topic exists, so no topic is left without its clean-up.
                if await writes.add_finalizer(obj):
                    candidates.append((reconciler, obj, reconciler.placement(obj, snapshot)))
        features = features_of(snapshot, self._settings)  # transport-encryption decides the addresses
        holders = build.topic_holders([(obj, where) for _, obj, where in candidates])
        placed: dict[str, tuple[dict[str, Any], build.Placement, topics.TopicOutcome]] = {}
        for reconciler, obj, where in candidates:
            holder = holders.get(obj["metadata"]["uid"])
            topic = build.conflict(holder, where) if holder is not None else await reconciler.ensure_topic(obj, where)
            placed[obj["metadata"]["uid"]] = (obj, where, topic)
        # First the channels' addresses and readiness (Subscriptions resolve and read them), keeping the
        # subscribers they had; then the Subscriptions; then each channel's subscribers.
        for obj, where, topic in placed.values():
            kept = list(mapping(obj.get("status")).get("subscribers") or [])
            await writes.status(obj, build.status(obj, where, topic, kept, resolver, self._settings,
                                                  features=features))
        for ch in snapshot.live("Channel"):
            await self.generic.write_status(ch, snapshot, writes, problems[ch["metadata"]["uid"]])
        egresses: dict[str, list[Egress]] = {}
        entries: dict[str, list[dict[str, Any]]] = {}
        for subscription in snapshot.live("Subscription"):
            found = subscription_build.channel_of(subscription, snapshot)
            entry = placed.get(found.concrete["metadata"]["uid"]) if found.concrete is not None else None
            resource = build.resource(*entry[:2]) if entry is not None and entry[2].ready else None
            built = await self.subscriptions.reconcile(subscription, found, resource, resolver, writes)
            if built is not None and built.egress is not None and resource is not None:
                egresses.setdefault(resource.uid, []).append(built.egress)
                entries.setdefault(resource.uid, []).append(built.subscriber or {})
        resources: list[Resource] = []
        for uid, (obj, where, topic) in placed.items():
            subscribers = sorted(entries.get(uid, []), key=lambda s: str(s.get("uid")))
            spec = dict(mapping(obj.get("spec")))
            if subscribers or spec.get("subscribers"):
                await writes.spec(obj, {**spec, "subscribers": subscribers})
            statuses = [build.subscriber_status(s["uid"], s["generation"], True) for s in subscribers]
            await writes.status(obj, build.status(obj, where, topic, statuses, resolver, self._settings,
                                                  features=features))
            if topic.ready:
                resources.append(build.resource(obj, where, tuple(sorted(egresses.get(uid, []),
                                                                         key=lambda e: e.uid))))
        for ch in snapshot.live("Channel"):
            await self.generic.write_status(ch, snapshot, writes, problems[ch["metadata"]["uid"]])
        return resources
