"""The kind registry: every kind Nerve stores, each registered once with all that admission and the CLI need.

A `Kind` entry holds a kind's API versions, its spellings (`broker`, `brokers`, `Broker`,
`brokers.eventing.knative.dev`, short names), its defaulting, validation and update validation, its
schema of known fields (control/api/schema.py) and its printer columns (control/api/columns.py).
`admission.admit()`, the control service and `nerve get/describe/delete` only look kinds up here;
nothing else branches on a kind's name.

How a kind plugs in (Channel, Subscription, Sequence, Parallel, PingSource, ...):

1. Write `control/api/<kind>.py` with pure functions over the manifest dict: `default_x(obj, settings)`,
   `validate_x(obj) -> list[FieldError]`, optionally `validate_x_update(old, new)` and
   `notices_x(obj) -> list[FieldNotice]` for values Nerve accepts but does not act on; a `SCHEMA`
   built from schema.py's shared types (DESTINATION, DELIVERY, ...) and `COLUMNS` as Knative's CRD
   prints them.
2. Add one `Kind(...)` below and put it in `KINDS`. Lookups, suggestions for typos, unknown-field
   warnings, `nerve get` tables and not-found messages follow from the entry.

What a kind produces (topics, consumer groups, contract entries, status) is its reconciler's, and an
addressable kind's ingress route is the ingress's; neither is decided here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from control.api import (
    apiserversource,
    broker,
    channel,
    channelable,
    columns,
    containersource,
    corev1,
    eventpolicy,
    eventtype,
    inmemorychannel,
    kafkachannel,
    kafkasource,
    natsjetstreamchannel,
    parallel,
    pingsource,
    rbac,
    secret,
    sequence,
    sinkbinding,
    source,
    subscription,
    trigger,
    workloads,
)
from control.api.columns import Column
from control.api.schema import OPEN, FieldNotice, Node, resource
from core.errors import FieldError

if TYPE_CHECKING:  # admission imports this module; the settings type is only needed by mypy
    from control.api.admission import AdmissionSettings

Obj = dict[str, Any]


def _no_defaults(obj: Obj, settings: AdmissionSettings) -> None:
    return None


def _valid(obj: Obj) -> list[FieldError]:
    return []


def _no_update_rules(old: Obj, new: Obj) -> list[FieldError]:
    return []


def _no_notices(obj: Obj) -> list[FieldNotice]:
    return []


def _same_shape(obj: Obj) -> None:
    return None


_ANY_RESOURCE = resource(OPEN)


@dataclass(frozen=True, slots=True)
class Kind:
    api_version: str
    """The version Nerve stores and answers with."""
    kind: str
    plural: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    older_versions: tuple[str, ...] = ()
    """Other API versions Knative still serves; accepted and stored under `api_version`."""
    convert: Callable[[Obj], None] = _same_shape
    """Rewrites, in place, a manifest of an older version into `api_version`'s shape (a v1beta1
    PingSource's `jsonData` into `data`), before any check: the rules then see only the stored shape."""
    categories: tuple[str, ...] = ()
    """kubectl's categories: `nerve get sources` lists every kind in category `sources`."""
    schema: Node = _ANY_RESOURCE
    default: Callable[[Obj, AdmissionSettings], None] = _no_defaults
    validate: Callable[[Obj], list[FieldError]] = _valid
    validate_create: Callable[[Obj], list[FieldError]] = _valid
    """Rules only a new object obeys (a channel's spec.subscribers must be empty when it is created)."""
    validate_update: Callable[[Obj, Obj], list[FieldError]] = _no_update_rules
    notices: Callable[[Obj], list[FieldNotice]] = _no_notices
    columns: tuple[Column, ...] = field(default=columns.DEFAULT)
    server_spec: tuple[str, ...] = ()
    """Spec fields a controller writes (a channel's subscribers): an update that leaves one out keeps it."""
    defaults_add_only_known: bool = False
    """The kind's defaults only add fields its schema knows (none of them unimplemented) and remove or change
    none the schema walk looks into: the walk after the defaults then finds what the walk before them
    found, so admission walks the manifest once, after them, for its notices and its pruning together.
    Set only where the defaults were read to be so (Broker, Trigger); tests/unit/test_admission_one_walk.py
    holds each such kind's answers to the two walks'."""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def resource(self) -> str:
        """kubectl's name of the resource type in messages: `triggers.eventing.knative.dev`, `configmaps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        """`trigger.eventing.knative.dev`, `configmap`: how `nerve apply` names what it did."""
        return f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()

    def not_found(self, name: str) -> str:
        return f'{self.resource} "{name}" not found'

    def spellings(self) -> set[str]:
        names = {self.kind.lower(), self.plural, *self.short_names}
        if self.group:
            names |= {f"{self.plural}.{self.group}", f"{self.kind.lower()}.{self.group}"}
        return names

    def api_versions(self) -> tuple[str, ...]:
        return (self.api_version, *self.older_versions)


BROKER = Kind(
    "eventing.knative.dev/v1", "Broker", "brokers",
    schema=broker.SCHEMA, default=broker.default_broker, validate=broker.validate_broker,
    validate_update=broker.validate_broker_update, notices=broker.notices_broker, columns=broker.COLUMNS,
    defaults_add_only_known=True,  # the class annotation, spec.delivery and refs' namespaces
)
TRIGGER = Kind(
    "eventing.knative.dev/v1", "Trigger", "triggers",
    older_versions=(trigger.V1ALPHA1,), convert=trigger.convert_trigger,  # the registry seed's v1alpha1
    schema=trigger.SCHEMA, default=trigger.default_trigger, validate=trigger.validate_trigger,
    validate_update=trigger.validate_trigger_update, columns=trigger.COLUMNS,
    defaults_add_only_known=True,  # the broker label, spec.filter and refs' namespaces
)
def _source(kind: str, plural: str, *, older: tuple[str, ...] = ("sources.knative.dev/v1beta1",),
            **rules: Any) -> Kind:
    """A sources.knative.dev/v1 kind: in category `sources`, its older versions served as Knative serves them."""
    return Kind("sources.knative.dev/v1", kind, plural, older_versions=older, categories=(source.CATEGORY,), **rules)


KAFKA_SOURCE = _source(
    "KafkaSource", "kafkasources",
    schema=kafkasource.SCHEMA, default=kafkasource.default_kafka_source,
    validate=kafkasource.validate_kafka_source, notices=kafkasource.notices_kafka_source,
    columns=kafkasource.COLUMNS,
)
PING_SOURCE = _source(
    "PingSource", "pingsources", older=("sources.knative.dev/v1beta1", "sources.knative.dev/v1beta2"),
    convert=pingsource.convert_ping_source,
    schema=pingsource.SCHEMA, default=pingsource.default_ping_source, validate=pingsource.validate_ping_source,
    columns=pingsource.COLUMNS,
)
API_SERVER_SOURCE = _source(
    "ApiServerSource", "apiserversources",
    schema=apiserversource.SCHEMA, default=apiserversource.default_api_server_source,
    validate=apiserversource.validate_api_server_source, notices=apiserversource.notices_api_server_source,
    columns=apiserversource.COLUMNS,
)
SINK_BINDING = _source(
    "SinkBinding", "sinkbindings",
    schema=sinkbinding.SCHEMA, default=sinkbinding.default_sink_binding, validate=sinkbinding.validate_sink_binding,
    columns=sinkbinding.COLUMNS,
)
CONTAINER_SOURCE = _source(
    "ContainerSource", "containersources",
    schema=containersource.SCHEMA, default=containersource.default_container_source,
    validate=containersource.validate_container_source, notices=containersource.notices_container_source,
    columns=containersource.COLUMNS,
)
# messaging.knative.dev: channels and Subscriptions (docs/channels.md).
_SUBSCRIBERS = ("subscribers",)
CHANNEL = Kind(
    channel.API_VERSION, "Channel", "channels", ("ch",),
    schema=channel.SCHEMA, default=channel.default_channel, validate=channel.validate_channel,
    validate_create=channelable.validate_channelable_create, validate_update=channel.validate_channel_update,
    columns=channel.COLUMNS, server_spec=_SUBSCRIBERS,
)
IN_MEMORY_CHANNEL = Kind(
    inmemorychannel.API_VERSION, "InMemoryChannel", "inmemorychannels", ("imc",),
    schema=inmemorychannel.SCHEMA, default=inmemorychannel.default_in_memory_channel,
    validate=inmemorychannel.validate_in_memory_channel, validate_create=channelable.validate_channelable_create,
    validate_update=channelable.validate_channelable_update, columns=inmemorychannel.COLUMNS, server_spec=_SUBSCRIBERS,
)
KAFKA_CHANNEL = Kind(
    kafkachannel.API_VERSION, "KafkaChannel", "kafkachannels", ("kc",),
    schema=kafkachannel.SCHEMA, default=kafkachannel.default_kafka_channel,
    validate=kafkachannel.validate_kafka_channel, validate_create=channelable.validate_channelable_create,
    validate_update=kafkachannel.validate_kafka_channel_update, columns=kafkachannel.COLUMNS, server_spec=_SUBSCRIBERS,
)
NATS_JETSTREAM_CHANNEL = Kind(
    natsjetstreamchannel.API_VERSION, "NatsJetStreamChannel", "natsjetstreamchannels",
    schema=natsjetstreamchannel.SCHEMA, default=natsjetstreamchannel.default_nats_jetstream_channel,
    validate=natsjetstreamchannel.validate_nats_jetstream_channel,
    validate_create=channelable.validate_channelable_create,
    validate_update=natsjetstreamchannel.validate_nats_jetstream_channel_update,
    columns=natsjetstreamchannel.COLUMNS, server_spec=_SUBSCRIBERS,
)
SUBSCRIPTION = Kind(
    subscription.API_VERSION, "Subscription", "subscriptions", ("sub",),
    schema=subscription.SCHEMA, default=subscription.default_subscription,
    validate=subscription.validate_subscription, validate_update=subscription.validate_subscription_update,
    columns=subscription.COLUMNS,
)
CHANNEL_KINDS: tuple[Kind, ...] = (IN_MEMORY_CHANNEL, KAFKA_CHANNEL, NATS_JETSTREAM_CHANNEL)
"""The concrete channel kinds: each has a topic (or stream) of its own and is an ingress resource."""

SEQUENCE = Kind(
    "flows.knative.dev/v1", "Sequence", "sequences",
    schema=sequence.SCHEMA, default=sequence.default_sequence, validate=sequence.validate_sequence,
    columns=sequence.COLUMNS,
)
PARALLEL = Kind(
    "flows.knative.dev/v1", "Parallel", "parallels",
    schema=parallel.SCHEMA, default=parallel.default_parallel, validate=parallel.validate_parallel,
    columns=parallel.COLUMNS,
)

# The event registry (docs/eventtypes.md): stored as v1beta3, older versions converted on admission.
EVENT_TYPE = Kind(
    eventtype.API_VERSION, "EventType", "eventtypes", older_versions=eventtype.OLDER_VERSIONS,
    convert=eventtype.convert_eventtype, schema=eventtype.SCHEMA, default=eventtype.default_eventtype,
    validate=eventtype.validate_eventtype, validate_update=eventtype.validate_eventtype_update,
    columns=eventtype.COLUMNS,
)

# Who may send to which Brokers and channels when authentication-oidc is on (docs/security.md).
EVENT_POLICY = Kind(
    eventpolicy.API_VERSION, "EventPolicy", "eventpolicies", schema=eventpolicy.SCHEMA,
    default=eventpolicy.default_event_policy, validate=eventpolicy.validate_event_policy,
    columns=eventpolicy.COLUMNS,
)

CONFIGMAP = Kind("v1", "ConfigMap", "configmaps", ("cm",), schema=corev1.CONFIGMAP_SCHEMA,
                 validate=corev1.validate_configmap, columns=corev1.CONFIGMAP_COLUMNS)
SERVICE = Kind("v1", "Service", "services", ("svc",), schema=corev1.SERVICE_SCHEMA,
               validate=corev1.validate_service, columns=corev1.SERVICE_COLUMNS)
NAMESPACE = Kind("v1", "Namespace", "namespaces", ("ns",), namespaced=False, schema=corev1.NAMESPACE_SCHEMA)
# RBAC, stored so Knative's walkthroughs apply as written; it grants nothing in embedded mode (rbac.py).
SERVICE_ACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts", ("sa",), schema=rbac.SCHEMA,
                       notices=rbac.notices_rbac)
ROLE = Kind(rbac.API_VERSION, "Role", "roles", schema=rbac.SCHEMA, notices=rbac.notices_rbac)
ROLE_BINDING = Kind(rbac.API_VERSION, "RoleBinding", "rolebindings", schema=rbac.SCHEMA, notices=rbac.notices_rbac)
CLUSTER_ROLE = Kind(rbac.API_VERSION, "ClusterRole", "clusterroles", namespaced=False, schema=rbac.SCHEMA,
                    notices=rbac.notices_rbac)
CLUSTER_ROLE_BINDING = Kind(rbac.API_VERSION, "ClusterRoleBinding", "clusterrolebindings", namespaced=False,
                            schema=rbac.SCHEMA, notices=rbac.notices_rbac)
RBAC_KINDS: tuple[Kind, ...] = (SERVICE_ACCOUNT, ROLE, ROLE_BINDING, CLUSTER_ROLE, CLUSTER_ROLE_BINDING)

# Kubernetes' workload kinds, run as local processes in embedded mode (control/api/workloads.py).
POD = Kind("v1", "Pod", "pods", ("po",), schema=workloads.SCHEMA, default=workloads.default_pod,
           validate=workloads.validate_pod, validate_update=workloads.validate_pod_update,
           notices=workloads.notices_pod, columns=workloads.POD_COLUMNS)
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments", ("deploy",), schema=workloads.SCHEMA,
                  default=workloads.default_deployment, validate=workloads.validate_deployment,
                  validate_update=workloads.validate_deployment_update, notices=workloads.notices_deployment,
                  columns=workloads.DEPLOYMENT_COLUMNS)
JOB = Kind("batch/v1", "Job", "jobs", schema=workloads.SCHEMA, default=workloads.default_job,
           validate=workloads.validate_job, validate_update=workloads.validate_job_update,
           notices=workloads.notices_job, columns=workloads.JOB_COLUMNS)
CRONJOB = Kind("batch/v1", "CronJob", "cronjobs", ("cj",), older_versions=("batch/v1beta1",),
               schema=workloads.SCHEMA, default=workloads.default_cronjob, validate=workloads.validate_cronjob,
               notices=workloads.notices_cronjob, columns=workloads.CRONJOB_COLUMNS)
EVENT = Kind("v1", "Event", "events", ("ev",), schema=workloads.EVENT_SCHEMA, validate=workloads.validate_event,
             columns=workloads.EVENT_COLUMNS)
WORKLOAD_KINDS: tuple[Kind, ...] = (DEPLOYMENT, JOB, CRONJOB, POD)

KINDS: tuple[Kind, ...] = (BROKER, TRIGGER, CONFIGMAP, SERVICE, NAMESPACE, KAFKA_SOURCE, PING_SOURCE,
                           CHANNEL, *CHANNEL_KINDS, SUBSCRIPTION, SEQUENCE, PARALLEL, *WORKLOAD_KINDS, EVENT,
                           API_SERVER_SOURCE, *RBAC_KINDS, EVENT_TYPE)
KINDS += (SINK_BINDING, CONTAINER_SOURCE)
KINDS += (EVENT_POLICY,)
# Credentials that Kafka and NATS configs name (control/secrets.py); values redacted in output.
SECRET = Kind("v1", "Secret", "secrets", schema=secret.SCHEMA, default=secret.default_secret,
              validate=secret.validate_secret, columns=secret.COLUMNS)
KINDS += (SECRET,)

_BY_SPELLING = {spelling: kind for kind in KINDS for spelling in kind.spellings()}
_BY_MANIFEST = {(version, kind.kind): kind for kind in KINDS for version in kind.api_versions()}
_BY_KIND = {kind.kind: kind for kind in KINDS}


class UnknownKind(Exception):
    """A kind no entry has; the message suggests the closest spelling when there is one."""

    def __init__(self, message: str, suggestion: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


def lookup(name: str) -> Kind | None:
    """A kind by any accepted spelling: `broker`, `brokers`, `Broker`, `brokers.eventing.knative.dev`."""
    return _BY_SPELLING.get(name.lower())


def suggest(name: str) -> str | None:
    """The accepted spelling closest to a mistyped one (`brokrs` -> `brokers`), if any is close."""
    match = difflib.get_close_matches(name.lower(), sorted(_BY_SPELLING), n=1, cutoff=0.75)
    return match[0] if match else None


def resolve(name: str) -> Kind:
    """`lookup`, or UnknownKind: `unknown kind "brokrs"; did you mean "brokers"?`."""
    found = lookup(name)
    if found is not None:
        return found
    close = suggest(name)
    if close is not None:
        raise UnknownKind(f'unknown kind "{name}"; did you mean "{close}"?', close)
    raise UnknownKind(f'the server doesn\'t have a resource type "{name}"; Nerve knows {supported()}', None)


def for_manifest(api_version: str, kind: str) -> Kind | None:
    return _BY_MANIFEST.get((api_version, kind))


def manifest_problem(api_version: str, kind: str) -> FieldError:
    """Why (apiVersion, kind) names no registered kind: a wrong version, a typo, or a kind Nerve lacks."""
    known = _BY_KIND.get(kind)
    if known is not None:
        served = " or ".join(known.api_versions())
        return FieldError("apiVersion", f"{api_version!r} is not served for {kind}; use {served}")
    close = difflib.get_close_matches(kind, sorted(_BY_KIND), n=1, cutoff=0.75)
    if close:
        right = _BY_KIND[close[0]]
        return FieldError("kind", f'unknown kind "{kind}"; did you mean "{right.kind}" ({right.api_version})?')
    return FieldError("kind", f"{api_version}/{kind} is not supported; Nerve knows {supported()}")


def in_category(category: str) -> tuple[Kind, ...]:
    """The kinds `nerve get <category>` lists, as `kubectl get sources` lists every source kind."""
    return tuple(kind for kind in KINDS if category in kind.categories)


def supported() -> str:
    return ", ".join(f"{k.api_version}/{k.kind}" for k in KINDS)
