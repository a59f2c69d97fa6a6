"""What a Broker produces: its placement (backend, cluster, topic), its contract entry, its status."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from channels.base import TopicSpec
from channels.nats import STREAM_CONFIG_KEYS
from channels.registry import BackendSettings
from control.api.broker import BROKER_CLASSES, CHANNEL_TEMPLATE_KEY, CLASS_ANNOTATION
from control.conditions import cond, with_ready
from control.reconcilers.resources import channel_template
from control.reconcilers.resources.address import addressable
from control.reconcilers.resources.delivery import dead_letter_condition
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.topics import TopicOutcome
from control.resolver import Resolver
from control.secrets import (
    AUTH_SECRET_KEY,
    SecretProblem,
    kafka_auth_secret,
    kafka_channel_cluster,
    misplaced_problem,
    misplaced_security_keys,
    nats_auth_secret,
    nats_channel_cluster,
    url_wants_tls,
    without_userinfo,
)
from control.settings import ControlSettings
from core.backend_security import BackendSecurity, NatsSecurity
from core.contract import Reference, Resource
from core.features import Features

# Where status records the cluster (Knative's Kafka broker records bootstrap.servers the same way), so
# clean-up still finds the topic once the Broker's ConfigMap is gone.
CONNECTION_ANNOTATION = {"kafka": "bootstrap.servers", "nats": "nerve.dev/nats-url"}
# spec.config ConfigMap keys of a NatsJetStreamBroker that shape its stream: those channels/nats.py reads.
NATS_STREAM_KEYS = STREAM_CONFIG_KEYS
# The class whose backend is the channel kind its ConfigMap's channel-template-spec names.
CHANNEL_BASED = "MTChannelBasedBroker"
# Knative's MT broker records the channel it sits on in status.annotations under these keys.
CHANNEL_ANNOTATIONS = ("knative.dev/channelAPIVersion", "knative.dev/channelKind", "knative.dev/channelName",
                       "knative.dev/channelNamespace")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a Broker's events live."""

    backend: str
    connection: str
    """Kafka bootstrap servers or a NATS URL; "" for memory."""
    topic: TopicSpec
    config: dict[str, str] = field(default_factory=dict)
    """The Broker's ConfigMap data, as the contract's backendConfig."""
    problem: str = ""
    """Why the topic cannot be made as configured (a ConfigMap value that is not a number)."""
    channel: tuple[str, str] | None = None
    """(apiVersion, kind) of the channel an MTChannelBasedBroker sits on."""
    refused: str = ""
    """Why an MTChannelBasedBroker has no channel at all (its template names nothing Nerve runs); then
    `backend` is "" and the Broker gets no contract entry, so it never falls back to another backend."""
    security: BackendSecurity | None = None
    """TLS and credentials from the auth Secret the ConfigMap names (`auth.secret.ref.name`)."""
    auth_problem: SecretProblem | None = None
    """Why that Secret cannot be used: the Broker is not Ready and gets no contract entry, so no
    client ever connects without the security it asked for."""


def broker_class(broker: dict[str, Any]) -> str:
    return str(broker["metadata"].get("annotations", {}).get(CLASS_ANNOTATION, ""))


def placement(broker: dict[str, Any], snapshot: Snapshot, settings: ControlSettings,
              defaults: BackendSettings) -> Placement | None:
    """None for a class Nerve does not implement. The ConfigMap is read from the snapshot."""
    backend = BROKER_CLASSES.get(broker_class(broker))
    if backend is None:
        return None
    meta = broker["metadata"]
    # A Broker written to an API server without Nerve's webhook (`kubectl apply` of one with no spec)
    # has no spec at all: it means the defaults, as embedded admission would have written them.
    config_ref = (broker.get("spec") or {}).get("config") or {}
    data: dict[str, str] = {}
    cm: dict[str, Any] | None = None
    if config_ref.get("kind") == "ConfigMap":
        cm = snapshot.find("ConfigMap", config_ref.get("namespace", ""), config_ref.get("name", ""))
        data = dict((cm or {}).get("data") or {})
    name = settings.topic_template.format(namespace=meta["namespace"], name=meta["name"])
    if broker_class(broker) == CHANNEL_BASED:
        return _channel_placement(name, config_ref, cm, data, defaults, snapshot)
    # The contract names the cluster even when the Broker does not, so every reader agrees on it.
    url_user = url_password = ""
    if backend == "kafka":
        connection = data.get("bootstrap.servers") or defaults.kafka_bootstrap_servers
    elif backend == "nats":
        # A user:password in the URL moves into the client's settings: status and logs show the URL only.
        connection, url_user, url_password = without_userinfo(data.get("url") or defaults.nats_url)
        data["url"] = connection
    else:
        connection = ""
    sizes: dict[str, int] = {}
    problem = ""
    for key in ("default.topic.partitions", "default.topic.replication.factor"):
        try:
            sizes[key] = int(data.get(key, "1"))
        except ValueError as exc:
            sizes[key], problem = 1, f"{key}: {exc}"
    topic = TopicSpec(
        name,
        partitions=sizes["default.topic.partitions"],
        replication_factor=sizes["default.topic.replication.factor"],
        # NATS streams take their tuning from the ConfigMap; Kafka's holds no topic configs.
        config={k: v for k, v in data.items() if k in NATS_STREAM_KEYS} if backend == "nats" else {},
    )
    cm_meta = (cm or {}).get("metadata", {})
    security, auth_problem = _auth(backend, data, cm_meta.get("namespace", ""), connection, snapshot)
    if backend == "nats" and url_user and auth_problem is None:
        if security is None:
            security = NatsSecurity(tls=url_wants_tls(connection), user=url_user, password=url_password)
        elif isinstance(security, NatsSecurity) and not (security.user or security.token or security.credentials):
            security = dataclasses.replace(security, user=url_user, password=url_password)  # the Secret's TLS
        else:
            security, auth_problem = None, SecretProblem("FailedToResolveConfig", (
                f"ConfigMap {cm_meta.get('namespace', '')}/{cm_meta.get('name', '')}: key url has a user and "
                f"password and the Secret {AUTH_SECRET_KEY} names has credentials too; give them one way"))
    misplaced = misplaced_security_keys(backend, data)
    if misplaced:
        auth_problem = misplaced_problem(backend, cm_meta.get("namespace", ""), cm_meta.get("name", ""), misplaced)
    return Placement(backend, connection, topic, data, problem, security=security, auth_problem=auth_problem)


def _auth(backend: str, data: dict[str, str], namespace: str, connection: str,
          snapshot: Snapshot) -> tuple[BackendSecurity | None, SecretProblem | None]:
    """The auth Secret's security (Knative: a Secret in the ConfigMap's namespace), or why it has none."""
    name = data.get(AUTH_SECRET_KEY, "")
    if not name:
        return None, None
    field = f"ConfigMap {namespace} key {AUTH_SECRET_KEY}"
    try:
        if backend == "kafka":
            return kafka_auth_secret(snapshot, namespace, name, field), None
        if backend == "nats":
            return nats_auth_secret(snapshot, namespace, name, connection, field), None
    except SecretProblem as exc:
        return None, exc
    return None, None


def _channel_placement(topic: str, config_ref: dict[str, Any], cm: dict[str, Any] | None, data: dict[str, str],
                       defaults: BackendSettings, snapshot: Snapshot) -> Placement:
    """An MTChannelBasedBroker: the topic of the channel kind its ConfigMap's template names.

    Kafka and NATS channels live on the cluster Nerve was started with (--kafka-bootstrap, --nats-url),
    as Knative's KafkaChannel and NatsJetStreamChannel take theirs from the platform's config.
    """
    where = f"ConfigMap {config_ref.get('namespace', '')}/{config_ref.get('name', '')}"
    if config_ref.get("kind") == "ConfigMap" and cm is None:
        # Knative's MT broker is not Ready until the ConfigMap it names exists; defaulting instead would
        # put events on memory and move the Broker once the ConfigMap arrives.
        return Placement("", "", TopicSpec(topic), refused=f"{where} does not exist; it holds the "
                         f"{CHANNEL_TEMPLATE_KEY} naming the Broker's channel kind")
    try:
        template = channel_template.parse(data)
    except channel_template.TemplateError as exc:
        return Placement("", "", TopicSpec(topic), refused=f"{where} key {CHANNEL_TEMPLATE_KEY}: {exc}")
    config: dict[str, str] = {}
    security: BackendSecurity | None = None
    auth_problem: SecretProblem | None = None
    if template.backend == "kafka":
        # A KafkaChannel's cluster: Knative's kafka-channel-config, else --kafka-bootstrap.
        connection, security, auth_problem = kafka_channel_cluster(snapshot, defaults.kafka_bootstrap_servers)
    elif template.backend == "nats":
        # A NatsJetStreamChannel's server: eventing-natss's config-nats, else --nats-url.
        connection, security, auth_problem = nats_channel_cluster(snapshot, defaults.nats_url)
        config["url"] = connection  # the contract names the server so every reader agrees on it
    else:
        connection = ""
    spec = TopicSpec(topic, partitions=template.partitions, replication_factor=template.replication_factor,
                     config=dict(template.config))
    return Placement(template.backend, connection, spec, {**config, **template.config},
                     channel=(template.api_version, template.kind), security=security, auth_problem=auth_problem)


def _holds(broker: dict[str, Any], topic: str) -> bool:
    """Whether the Broker's last status says it has `topic` (it was made, for this Broker)."""
    status = broker.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return (status.get("annotations") or {}).get("nerve.dev/topic") == topic and \
        conditions.get("TriggerChannelReady") == "True"


def _rank(broker: dict[str, Any], topic: str) -> tuple[bool, str, str]:
    # The one that has the topic keeps it; otherwise the oldest (timestamps have whole seconds: then uid).
    meta = broker["metadata"]
    return not _holds(broker, topic), str(meta.get("creationTimestamp", "")), str(meta.get("uid", ""))


def _same_topic(a: Placement, b: Placement) -> bool:
    if a.refused or b.refused:
        return False  # a Broker with no channel holds no topic
    return (a.backend, a.connection, a.topic.name) == (b.backend, b.connection, b.topic.name)


def topic_holder(broker: dict[str, Any], where: Placement, snapshot: Snapshot, settings: ControlSettings,
                 defaults: BackendSettings) -> dict[str, Any] | None:
    """The other Broker that holds `where`'s topic first, or None when this Broker may have it.

    The default templates are injective, but a --topic-template such as `{namespace}-{name}` maps `a/b-c`
    and `a-b/c` to one topic: then the Broker that has it (or else the oldest) keeps it and the others
    are not Ready, so events never cross between them. A holder being deleted holds it until it is gone.
    """
    mine = _rank(broker, where.topic.name)
    for other in snapshot.all("Broker"):
        if other["metadata"].get("uid") == broker["metadata"].get("uid") or _rank(other, where.topic.name) > mine:
            continue
        theirs = placement(other, snapshot, settings, defaults)
        if theirs is not None and _same_topic(theirs, where):
            return other
    return None


def topic_shared(broker: dict[str, Any], where: Placement, snapshot: Snapshot, settings: ControlSettings,
                 defaults: BackendSettings) -> bool:
    """Whether another live Broker maps to `where`'s topic: deleting this one must then keep the topic."""
    for other in snapshot.live("Broker"):
        if other["metadata"].get("uid") == broker["metadata"].get("uid"):
            continue
        theirs = placement(other, snapshot, settings, defaults)
        if theirs is not None and _same_topic(theirs, where):
            return True
    return False


def conflict(holder: dict[str, Any], where: Placement) -> TopicOutcome:
    meta = holder["metadata"]
    return TopicOutcome(False, "TopicConflict",
                        f"{where.backend} topic {where.topic.name!r} is already Broker {meta['namespace']}/"
                        f"{meta['name']}'s; the topic template must name each Broker's topic apart "
                        "(the default, knative-broker.{namespace}.{name}, does)")


def cleanup_placement(broker: dict[str, Any], snapshot: Snapshot, settings: ControlSettings,
                      defaults: BackendSettings) -> Placement | None:
    """Where the Broker's topic is, to delete it: as configured, or, once its ConfigMap was deleted
    (`nerve delete -f dir/` deletes it first), on the cluster its status recorded."""
    where = placement(broker, snapshot, settings, defaults)
    if where is None:
        return None
    if where.refused:
        return _recorded_placement(broker, defaults)
    ref = (broker.get("spec") or {}).get("config") or {}
    recorded = broker.get("status", {}).get("annotations", {}).get(CONNECTION_ANNOTATION.get(where.backend, ""))
    if recorded and ref.get("kind") == "ConfigMap" and snapshot.find(
        "ConfigMap", ref.get("namespace", ""), ref.get("name", "")
    ) is None:
        return Placement(where.backend, recorded, where.topic, where.config, security=where.security)
    return where


def _recorded_placement(broker: dict[str, Any], defaults: BackendSettings) -> Placement | None:
    """The topic an MTChannelBasedBroker's status says it sat on (its template since went bad or its
    ConfigMap was deleted first), or None when it never had one."""
    annotations = (broker.get("status") or {}).get("annotations") or {}
    backend, topic = annotations.get("nerve.dev/backend", ""), annotations.get("nerve.dev/topic", "")
    if not backend or not topic:
        return None
    fallback = {"kafka": defaults.kafka_bootstrap_servers, "nats": defaults.nats_url}.get(backend, "")
    connection = annotations.get(CONNECTION_ANNOTATION.get(backend, ""), "") or fallback
    return Placement(backend, connection, TopicSpec(topic), {"url": connection} if backend == "nats" else {})


def refusal(where: Placement) -> TopicOutcome:
    """The condition of a Broker whose channel template Nerve cannot run (Knative's reason)."""
    return TopicOutcome(False, "ChannelTemplateFailed", where.refused)


def auth_refusal(problem: SecretProblem) -> TopicOutcome:
    """The condition of a Broker whose auth Secret is missing or unusable (Knative's Kafka Broker
    marks its topic condition "Failed to get broker auth secret")."""
    return TopicOutcome(False, problem.reason, problem.message)


def resource(broker: dict[str, Any], where: Placement) -> Resource:
    """The contract entry, without egresses (the Triggers add theirs)."""
    meta = broker["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    return Resource(
        uid=uid,
        reference=Reference(uid, ns, name, "Broker"),
        backend=where.backend,  # type: ignore[arg-type]
        topic=where.topic.name,
        ingress_path=f"/{ns}/{name}",
        bootstrap_servers=where.connection if where.backend == "kafka" else "",
        backend_config=dict(where.config),
        security=where.security,
    )


def status(broker: dict[str, Any], where: Placement | None, topic: TopicOutcome | None, resolver: Resolver,
           settings: ControlSettings, now: str | None = None, *, features: Features | None = None) -> dict[str, Any]:
    meta, spec = broker["metadata"], broker.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    out: dict[str, Any] = {"observedGeneration": meta["generation"]}
    conditions = [cond("FilterReady", True), cond("IngressReady", True)]
    if where is None:
        conditions.append(cond("TriggerChannelReady", False, "BrokerClassNotSupported",
                               f"broker class {broker_class(broker)!r} is not one of {', '.join(BROKER_CLASSES)}"))
    elif where.refused:
        # No channel, so no address; the old record stays so that clean-up still finds the topic.
        previous = (broker.get("status") or {}).get("annotations")
        if previous:
            out["annotations"] = dict(previous)
        outcome = topic or refusal(where)
        conditions.append(cond("TriggerChannelReady", False, outcome.reason, outcome.message))
    else:
        out.update(addressable(f"/{ns}/{name}", settings, features or Features()))
        out["annotations"] = {"nerve.dev/backend": where.backend, "nerve.dev/topic": where.topic.name}
        if where.channel is not None:
            out["annotations"].update(zip(CHANNEL_ANNOTATIONS, (*where.channel, f"{name}-kne-trigger", ns),
                                          strict=True))
        key = CONNECTION_ANNOTATION.get(where.backend)
        # Recorded once the topic exists there; a Broker that lost its ConfigMap keeps the old record.
        recorded = where.connection if topic is not None and topic.ready else (
            broker.get("status", {}).get("annotations", {}).get(key or ""))
        if key and recorded:
            out["annotations"][key] = recorded
        conditions.append(cond("Addressable", True))
        if topic is None or topic.ready:
            conditions.append(cond("TriggerChannelReady", True))
        else:
            conditions.append(cond("TriggerChannelReady", False, topic.reason, topic.message))
    dls = (spec.get("delivery") or {}).get("deadLetterSink")
    conditions.append(dead_letter_condition(dls, ns, resolver, out))
    out["conditions"] = with_ready(conditions, broker.get("status", {}).get("conditions"), now)
    return out
