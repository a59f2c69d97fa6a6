"""What the channels produce: a concrete channel's placement (backend, cluster, topic), contract entry and
status; a generic Channel's backing channel and its mirrored status.

A concrete channel (InMemoryChannel, KafkaChannel, NatsJetStreamChannel) is one contract Resource of its
own kind at `/channels/<ns>/<name>`, with one topic (or stream) on its kind's backend, on the pool's
default cluster (--kafka-bootstrap, --nats-url), as a Broker that names no ConfigMap. A generic Channel has
none of its own: it is its backing channel's (same name, owned), whose address and subscribers it mirrors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from channels.base import TopicSpec
from channels.registry import BackendSettings
from control.api import kinds
from control.api.admission import AdmissionSettings
from control.api.channel import BACKEND_OF_KIND
from control.api.channelable import OIDC_DISABLED, SUBSCRIBABLE_ANNOTATION
from control.api.kafkachannel import DEFAULT_RETENTION
from control.api.meta import mapping
from control.api.natsjetstreamchannel import stream_config
from control.conditions import cond, with_ready
from control.reconcilers.garbage import owned_by
from control.reconcilers.resources.address import addressable
from control.reconcilers.resources.delivery import dead_letter_condition
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.topics import TopicOutcome
from control.resolver import Resolver
from control.secrets import SecretProblem, kafka_channel_cluster, nats_channel_cluster
from control.settings import ControlSettings
from core.backend_security import BackendSecurity
from core.contract import Egress, Reference, Resource
from core.durations import parse_ms
from core.features import Features

CONCRETE = tuple(k.kind for k in kinds.CHANNEL_KINDS)
INGRESS_PREFIX = "/channels"
# The condition that says the channel's topic (or stream) exists, as each kind names it in Knative.
TOPIC_CONDITION = {"InMemoryChannel": "DispatcherReady", "KafkaChannel": "TopicReady",
                   "NatsJetStreamChannel": "StreamReady"}
# Where status records the cluster the topic was made on, so clean-up finds it after a restart with
# other flags (the Broker records it the same way).
CONNECTION_ANNOTATION = {"kafka": "bootstrap.servers", "nats": "nerve.dev/nats-url"}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a concrete channel's events live."""

    backend: Literal["memory", "kafka", "nats"]
    connection: str
    """Kafka bootstrap servers or a NATS URL; "" for memory."""
    topic: TopicSpec
    security: BackendSecurity | None = None
    """A KafkaChannel's TLS and SASL, from kafka-channel-config's auth Secret (control/secrets.py)."""
    auth_problem: SecretProblem | None = None
    """Why that Secret cannot be used: the channel's topic is not made and it gets no contract entry."""


def ingress_path(namespace: str, name: str) -> str:
    return f"{INGRESS_PREFIX}/{namespace}/{name}"


def address(namespace: str, name: str, settings: ControlSettings) -> str:
    return settings.ingress_base_url.rstrip("/") + ingress_path(namespace, name)


def topic_name(channel: dict[str, Any], settings: ControlSettings) -> str:
    meta, spec = channel["metadata"], mapping(channel.get("spec"))
    override = mapping(spec.get("stream")).get("overrideName") if channel["kind"] == "NatsJetStreamChannel" else None
    if override:
        return str(override)
    return settings.channel_topic_template.format(namespace=meta["namespace"], name=meta["name"])


def placement(channel: dict[str, Any], settings: ControlSettings, defaults: BackendSettings,
              snapshot: Snapshot | None = None) -> Placement:
    """The channel's topic as its spec shapes it (validated at admission, so the values parse); a
    KafkaChannel's cluster and security from Knative's kafka-channel-config, a NatsJetStreamChannel's from
    eventing-natss's config-nats, when `snapshot` has them."""
    kind, spec = channel["kind"], mapping(channel.get("spec"))
    backend: Literal["memory", "kafka", "nats"] = BACKEND_OF_KIND[kind]  # type: ignore[assignment]
    name = topic_name(channel, settings)
    if kind == "KafkaChannel":
        retention = parse_ms(spec.get("retentionDuration") or DEFAULT_RETENTION)
        topic = TopicSpec(name, partitions=int(spec.get("numPartitions") or 1),
                          replication_factor=int(spec.get("replicationFactor") or 1),
                          config={"retention.ms": str(retention)})
        if snapshot is None:
            return Placement(backend, defaults.kafka_bootstrap_servers, topic)
        servers, security, problem = kafka_channel_cluster(snapshot, defaults.kafka_bootstrap_servers)
        return Placement(backend, servers, topic, security, problem)
    if kind == "NatsJetStreamChannel":
        topic = TopicSpec(name, config=stream_config(spec))
        if snapshot is None:
            return Placement(backend, defaults.nats_url, topic)
        url, nats_security, nats_problem = nats_channel_cluster(snapshot, defaults.nats_url)
        return Placement(backend, url, topic, nats_security, nats_problem)
    return Placement(backend, "", TopicSpec(name))


def _holds(channel: dict[str, Any], where: Placement) -> bool:
    """Whether the channel's last status says the topic was made for it."""
    status = mapping(channel.get("status"))
    made = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return mapping(status.get("annotations")).get("nerve.dev/topic") == where.topic.name and \
        made.get(TOPIC_CONDITION[channel["kind"]]) == "True"


def topic_holders(placed: list[tuple[dict[str, Any], Placement]]) -> dict[str, dict[str, Any]]:
    """For each channel whose topic another channel has first, that other channel (by uid).

    The default template is injective, but two NatsJetStreamChannels may name one stream in overrideName,
    and a --channel-topic-template such as `{namespace}-{name}` maps `a/b-c` and `a-b/c` to one topic. Then
    the channel that has it (or else the oldest) keeps it and the others are not Ready, so events never
    cross between channels.
    """
    by_topic: dict[tuple[str, str, str], list[tuple[dict[str, Any], Placement]]] = {}
    for channel, where in placed:
        by_topic.setdefault((where.backend, where.connection, where.topic.name), []).append((channel, where))
    holders: dict[str, dict[str, Any]] = {}
    for sharing in by_topic.values():
        if len(sharing) < 2:
            continue
        ranked = sorted(sharing, key=lambda cw: (not _holds(*cw), str(cw[0]["metadata"].get("creationTimestamp", "")),
                                                 str(cw[0]["metadata"].get("uid", ""))))
        holder = ranked[0][0]
        holders.update({channel["metadata"]["uid"]: holder for channel, _ in ranked[1:]})
    return holders


def conflict(holder: dict[str, Any], where: Placement) -> TopicOutcome:
    meta = holder["metadata"]
    return TopicOutcome(False, "TopicConflict", f"{where.backend} topic {where.topic.name!r} is already "
                        f"{holder['kind']} {meta['namespace']}/{meta['name']}'s; give each channel a topic of its own "
                        "(another stream.overrideName, or a --channel-topic-template that names each apart)")


def cleanup_placement(channel: dict[str, Any], settings: ControlSettings, defaults: BackendSettings,
                      snapshot: Snapshot | None = None) -> Placement:
    """Where the topic was made: on the cluster the status recorded, else where it would be made now."""
    where = placement(channel, settings, defaults, snapshot)
    annotations = mapping(mapping(channel.get("status")).get("annotations"))
    recorded = annotations.get(CONNECTION_ANNOTATION.get(where.backend, ""))
    topic = annotations.get("nerve.dev/topic")
    if recorded or topic:
        return Placement(where.backend, str(recorded or where.connection),
                         TopicSpec(str(topic or where.topic.name), where.topic.partitions,
                                   where.topic.replication_factor, where.topic.config),
                         where.security, where.auth_problem)
    return where


def resource(channel: dict[str, Any], where: Placement, egresses: tuple[Egress, ...] = ()) -> Resource:
    meta = channel["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    return Resource(
        uid=uid,
        reference=Reference(uid, ns, name, channel["kind"]),
        backend=where.backend,
        topic=where.topic.name,
        ingress_path=ingress_path(ns, name),
        egresses=egresses,
        bootstrap_servers=where.connection if where.backend == "kafka" else "",
        backend_config={"url": where.connection} if where.backend == "nats" else {},
        security=where.security,
    )


def subscriber_status(uid: str, generation: int, ready: bool, message: str = "") -> dict[str, Any]:
    """One entry of status.subscribers (duckv1.SubscriberStatus)."""
    out: dict[str, Any] = {"uid": uid, "observedGeneration": generation, "ready": "True" if ready else "False"}
    if message:
        out["message"] = message
    return out


def status(channel: dict[str, Any], where: Placement, topic: TopicOutcome, subscribers: list[dict[str, Any]],
           resolver: Resolver, settings: ControlSettings, now: str | None = None, *,
           features: Features | None = None) -> dict[str, Any]:
    """A concrete channel's status: address, the topic condition, dead-letter sink, subscribers."""
    meta, spec = channel["metadata"], mapping(channel.get("spec"))
    ns, name = meta["namespace"], meta["name"]
    old = mapping(channel.get("status"))
    out: dict[str, Any] = {"observedGeneration": meta["generation"],
                           **addressable(ingress_path(ns, name), settings, features or Features())}
    annotations = {"nerve.dev/backend": where.backend, "nerve.dev/topic": where.topic.name}
    key = CONNECTION_ANNOTATION.get(where.backend)
    recorded = where.connection if topic.ready else mapping(old.get("annotations")).get(key or "")
    if key and recorded:
        annotations[key] = recorded
    out["annotations"] = annotations
    condition = TOPIC_CONDITION[channel["kind"]]
    conditions = [
        cond(condition, True) if topic.ready else cond(condition, False, topic.reason, topic.message),
        cond("Addressable", True),
        cond("EventPoliciesReady", True, OIDC_DISABLED),
        dead_letter_condition(mapping(spec.get("delivery")).get("deadLetterSink"), ns, resolver, out),
    ]
    out["subscribers"] = subscribers
    out["conditions"] = with_ready(conditions, old.get("conditions"), now)
    return out


# ------------------------------------------------------------------------------------ generic Channel


def template(channel: dict[str, Any]) -> dict[str, Any]:
    return mapping(mapping(channel.get("spec")).get("channelTemplate"))


def backing_channel(channel: dict[str, Any]) -> dict[str, Any]:
    """The concrete channel a Channel is backed by: the template's kind and spec, the Channel's name and
    delivery, defaulted as admission defaults that kind (control's own writes skip admission)."""
    meta, spec, tmpl = channel["metadata"], mapping(channel.get("spec")), template(channel)
    child_spec = copy.deepcopy(mapping(tmpl.get("spec")))
    child_spec.pop("subscribers", None)
    if spec.get("delivery") is not None:
        child_spec["delivery"] = copy.deepcopy(spec["delivery"])
    child: dict[str, Any] = {
        "apiVersion": tmpl["apiVersion"], "kind": tmpl["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                     "annotations": {SUBSCRIBABLE_ANNOTATION: "v1"}},
        "spec": child_spec,
    }
    kind = kinds.for_manifest(tmpl["apiVersion"], tmpl["kind"])
    if kind is not None:
        kind.default(child, AdmissionSettings())
    return child


def backing_of(channel: dict[str, Any], snapshot: Snapshot) -> dict[str, Any] | None:
    """The Channel's backing channel as stored: of the template's kind and name, owned by the Channel."""
    tmpl, meta = template(channel), channel["metadata"]
    found = snapshot.find(str(tmpl.get("kind", "")), meta["namespace"], meta["name"])
    if found is None or not owned_by(found, channel):
        return None
    return found


def channel_status(channel: dict[str, Any], backing: dict[str, Any] | None, problem: str = "",
                   now: str | None = None) -> dict[str, Any]:
    """A Channel mirrors its backing channel: address, subscribers, dead-letter sink, readiness."""
    meta, tmpl = channel["metadata"], template(channel)
    old = mapping(channel.get("status"))
    out: dict[str, Any] = {"observedGeneration": meta["generation"]}
    mirrored = mapping((backing or {}).get("status"))
    conditions: list[dict[str, Any]] = [cond("EventPoliciesReady", True, OIDC_DISABLED)]
    if backing is None:
        reason = "BackingChannelNotConfigured"
        message = problem or f"{tmpl.get('kind')} {meta['name']!r} is not made yet"
        conditions += [cond("BackingChannelReady", False, reason, message), cond("Addressable", None, reason, message)]
    else:
        out["channel"] = {"apiVersion": backing["apiVersion"], "kind": backing["kind"], "name": meta["name"],
                          "namespace": meta["namespace"]}
        ready = next((c for c in mirrored.get("conditions") or [] if c.get("type") == "Ready"), None)
        if ready is not None and ready.get("status") == "True":
            conditions.append(cond("BackingChannelReady", True))
        else:
            why = ready or {}
            conditions.append(cond("BackingChannelReady", False, str(why.get("reason") or "BackingChannelNotReady"),
                                   str(why.get("message") or f"{backing['kind']} is not Ready yet")))
        url = mapping(mirrored.get("address")).get("url")
        if url:
            out["address"] = dict(mapping(mirrored.get("address")))
            if mirrored.get("addresses"):
                out["addresses"] = [dict(a) for a in mirrored["addresses"]]
            conditions.append(cond("Addressable", True))
        else:
            conditions.append(cond("Addressable", False, "EmptyHostname", "the backing channel has no address yet"))
        out["subscribers"] = list(mirrored.get("subscribers") or [])
    dls = mapping(mapping(channel.get("spec")).get("delivery")).get("deadLetterSink")
    if dls is None:
        conditions.append(cond("DeadLetterSinkResolved", True, "DeadLetterSinkNotConfigured",
                               "No dead letter sink is configured."))
    elif mirrored.get("deadLetterSinkUri"):
        out["deadLetterSinkUri"] = mirrored["deadLetterSinkUri"]
        conditions.append(cond("DeadLetterSinkResolved", True))
    else:
        backing_dls: dict[str, Any] = next(
            (c for c in mirrored.get("conditions") or [] if c.get("type") == "DeadLetterSinkResolved"), {})
        conditions.append(cond("DeadLetterSinkResolved", False, str(backing_dls.get("reason") or "Unresolved"),
                               str(backing_dls.get("message") or "the backing channel has not resolved it yet")))
    out["conditions"] = with_ready(conditions, old.get("conditions"), now)
    return out
