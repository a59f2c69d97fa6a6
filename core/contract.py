"""The data-plane contract: the one document control writes and ingress, dispatcher and sources read.

Its JSON is a superset of the JSON form of Knative's Kafka broker `contract.proto`: `generation`, then
`resources[]` with `uid`, `topics`, `bootstrapServers`, `ingress.path`, `egressConfig` and `egresses[]`
(`consumerGroup`, `destination`, `replyUrl` / `replyToOriginalTopic` / `discardReply`, `filter.attributes`,
`egressConfig`, `deliveryOrder`, `reference`). Durations are milliseconds and enums use the proto names,
so Knative's own receiver and dispatcher can read the same file. Nerve's own additions are `backend`,
`backendConfig`, `kind` on the reference, `filters` (the Trigger's `spec.filters` as written), `format`, `createdAt`,
and `sources[]`: one entry per source adapter (KafkaSource, PingSource, ...) that the `sources` service
runs, each with the egress it delivers through and its kind's own `config`, and `workloads[]`: one entry
per container of a local Pod that the sources service runs as a process in embedded mode (`Workload`).

Control resolves every merge (Trigger delivery over Broker delivery, Subscription over Channel) before
writing, so each egress carries the final delivery settings and the data plane decides nothing about them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from core.backend_security import BackendSecurity, KafkaSecurity, security_from_json
from core.features import Features

BackoffPolicy = Literal["exponential", "linear"]
DeliveryOrder = Literal["unordered", "ordered"]
EventFormat = Literal["binary", "json"]
Backend = Literal["memory", "kafka", "nats"]
ResourceKind = Literal["Broker", "InMemoryChannel", "KafkaChannel", "NatsJetStreamChannel"]
"""A contract resource's `reference.kind`: a Broker or a concrete channel (a generic Channel has none of
its own: it is its backing channel's)."""

_PROTO_BACKOFF = {"exponential": "Exponential", "linear": "Linear"}
_PROTO_ORDER = {"unordered": "UNORDERED", "ordered": "ORDERED"}


@dataclass(frozen=True, slots=True)
class Reference:
    uid: str
    namespace: str
    name: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"uuid": self.uid, "namespace": self.namespace, "name": self.name, "kind": self.kind}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Reference:
        return cls(uid=obj.get("uuid", ""), namespace=obj["namespace"], name=obj["name"], kind=obj.get("kind", ""))


@dataclass(frozen=True, slots=True)
class EgressConfig:
    """Resolved DeliverySpec: `retry` retries after the first attempt, then the dead-letter sink."""

    retry: int = 0
    backoff_policy: BackoffPolicy = "exponential"
    backoff_delay_ms: int = 0
    timeout_ms: int | None = None
    dead_letter: str | None = None
    retry_after_max_ms: int | None = None
    dead_letter_ca_certs: str | None = None
    """PEM the dead-letter sink's https certificate is verified against (Knative's `deadLetterCACerts`)."""

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "retry": self.retry,
            "backoffPolicy": _PROTO_BACKOFF[self.backoff_policy],
            "backoffDelay": self.backoff_delay_ms,
        }
        if self.timeout_ms is not None:
            obj["timeout"] = self.timeout_ms
        if self.dead_letter is not None:
            obj["deadLetter"] = self.dead_letter
        if self.retry_after_max_ms is not None:
            obj["retryAfterMax"] = self.retry_after_max_ms
        if self.dead_letter_ca_certs:
            obj["deadLetterCACerts"] = self.dead_letter_ca_certs
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> EgressConfig:
        policy = str(obj.get("backoffPolicy", "Exponential")).lower()
        return cls(
            retry=int(obj.get("retry", 0)),
            backoff_policy="linear" if policy == "linear" else "exponential",
            backoff_delay_ms=int(obj.get("backoffDelay", 0)),
            timeout_ms=int(obj["timeout"]) if obj.get("timeout") is not None else None,
            dead_letter=obj.get("deadLetter") or None,
            retry_after_max_ms=int(obj["retryAfterMax"]) if obj.get("retryAfterMax") is not None else None,
            dead_letter_ca_certs=obj.get("deadLetterCACerts") or None,
        )


@dataclass(frozen=True, slots=True)
class EgressAuth:
    """contract.proto's `oidcServiceAccountName`, `destinationAudience`, `replyUrlAudience` and
    `deadLetterAudience` (the last is in `egressConfig` there; Nerve writes all four on the egress).
    `subject` is Nerve's: the full token subject, `system:serviceaccount:<ns>:<account>`. An empty
    audience: no token is sent there."""

    subject: str
    service_account: str = ""
    destination_audience: str = ""
    reply_audience: str = ""
    dead_letter_audience: str = ""

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"oidcServiceAccountName": self.service_account, "oidcSubject": self.subject}
        for key, value in (("destinationAudience", self.destination_audience),
                           ("replyUrlAudience", self.reply_audience),
                           ("deadLetterAudience", self.dead_letter_audience)):
            if value:
                obj[key] = value
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> EgressAuth | None:
        if not obj.get("oidcSubject"):
            return None
        return cls(str(obj["oidcSubject"]), str(obj.get("oidcServiceAccountName", "")),
                   str(obj.get("destinationAudience", "")), str(obj.get("replyUrlAudience", "")),
                   str(obj.get("deadLetterAudience", "")))

    def audience_for(self, url: str, egress: Egress) -> str:
        """The audience of `url` when it is this egress's destination, reply URL or dead-letter sink."""
        if url == egress.destination:
            return self.destination_audience
        if url == egress.reply_url:
            return self.reply_audience
        if url == egress.egress_config.dead_letter:
            return self.dead_letter_audience
        return ""


@dataclass(frozen=True, slots=True)
class TokenMatcher:
    """contract.proto's TokenMatcher on the `sub` claim: exact, or a prefix (an EventPolicy's `*` suffix)."""

    sub: str
    prefix: bool = False

    def matches(self, sub: str) -> bool:
        return sub.startswith(self.sub) if self.prefix else sub == self.sub

    def to_json(self) -> dict[str, Any]:
        return {"prefix" if self.prefix else "exact": {"attributes": {"sub": self.sub}}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TokenMatcher:
        if "prefix" in obj:
            return cls(str(obj["prefix"]["attributes"]["sub"]), prefix=True)
        return cls(str(obj["exact"]["attributes"]["sub"]))


@dataclass(frozen=True, slots=True)
class IngressPolicy:
    """contract.proto's EventPolicy: an event is let in when its token's subject matches one of the
    matchers and the event passes every filter (the Subscriptions API dialects, as an EventPolicy wrote them)."""

    matchers: tuple[TokenMatcher, ...]
    filters: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"tokenMatchers": [m.to_json() for m in self.matchers]}
        if self.filters:
            obj["filters"] = [dict(f) for f in self.filters]
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> IngressPolicy:
        return cls(tuple(TokenMatcher.from_json(m) for m in obj.get("tokenMatchers") or []),
                   tuple(dict(f) for f in obj.get("filters") or []))


@dataclass(frozen=True, slots=True)
class IngressAuth:
    """An addressable's OIDC ingress (contract.proto `Ingress.audience`, `Ingress.eventPolicies`): a request
    needs a token for `audience`, and its subject must be let in by one of `policies` (none: nobody is;
    control compiles the default-authorization-mode into these when no EventPolicy applies)."""

    audience: str
    policies: tuple[IngressPolicy, ...] = ()


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """Nerve's own: the issuer the ingress trusts and its public keys (a JWKS), so no ingress needs to reach
    control, or hold the private key, to verify a token."""

    issuer: str
    jwks: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks": self.jwks}

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None) -> OidcConfig | None:
        if not obj:
            return None
        return cls(str(obj.get("issuer", "")), dict(obj.get("jwks") or {}))


@dataclass(frozen=True, slots=True)
class Egress:
    """One Trigger or Subscription: a consumer group on its resource's topic and where events go."""

    uid: str
    reference: Reference
    consumer_group: str
    destination: str
    generation: int = 1
    reply_url: str | None = None
    reply_to_original_topic: bool = False
    filter_attributes: dict[str, str] = field(default_factory=dict)
    filters: list[dict[str, Any]] = field(default_factory=list)
    egress_config: EgressConfig = field(default_factory=EgressConfig)
    delivery_order: DeliveryOrder = "unordered"
    format: EventFormat | None = None
    created: str | None = None
    """When the Trigger or Subscription was made (RFC 3339, its creationTimestamp): a new consumer group
    starts with the events stored from then on, so none accepted before the dispatcher read is skipped."""
    destination_ca_certs: str | None = None
    """PEM the destination's https certificate is verified against (Knative's `destinationCACerts`)."""
    reply_url_ca_certs: str | None = None
    """PEM the reply URL's https certificate is verified against (Knative's `replyUrlCACerts`)."""
    auth: EgressAuth | None = None
    """OIDC (authentication-oidc enabled): who this egress sends as and the audiences of where it sends."""

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "uid": self.uid,
            "consumerGroup": self.consumer_group,
            "destination": self.destination,
            "egressConfig": self.egress_config.to_json(),
            "deliveryOrder": _PROTO_ORDER[self.delivery_order],
            "reference": self.reference.to_json(),
            "generation": self.generation,
        }
        if self.reply_url is not None:
            obj["replyUrl"] = self.reply_url
        elif self.reply_to_original_topic:
            obj["replyToOriginalTopic"] = {}
        else:
            obj["discardReply"] = {}
        if self.filter_attributes:
            obj["filter"] = {"attributes": dict(self.filter_attributes)}
        if self.filters:
            obj["filters"] = list(self.filters)
        if self.format is not None:
            obj["format"] = self.format
        if self.created is not None:
            obj["createdAt"] = self.created
        if self.destination_ca_certs:
            obj["destinationCACerts"] = self.destination_ca_certs
        if self.reply_url_ca_certs:
            obj["replyUrlCACerts"] = self.reply_url_ca_certs
        if self.auth is not None:
            obj.update(self.auth.to_json())
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Egress:
        return cls(
            uid=obj["uid"],
            reference=Reference.from_json(obj["reference"]),
            consumer_group=obj["consumerGroup"],
            destination=obj["destination"],
            generation=int(obj.get("generation", 1)),
            reply_url=obj.get("replyUrl"),
            reply_to_original_topic="replyToOriginalTopic" in obj,
            filter_attributes=dict((obj.get("filter") or {}).get("attributes") or {}),
            filters=list(obj.get("filters") or []),
            egress_config=EgressConfig.from_json(obj.get("egressConfig") or {}),
            delivery_order="ordered" if obj.get("deliveryOrder") == "ORDERED" else "unordered",
            format=obj.get("format"),
            created=obj.get("createdAt"),
            destination_ca_certs=obj.get("destinationCACerts") or None,
            reply_url_ca_certs=obj.get("replyUrlCACerts") or None,
            auth=EgressAuth.from_json(obj),
        )


@dataclass(frozen=True, slots=True)
class Resource:
    """A Broker or a channel: an ingress path, a backend topic and its egresses (Triggers or Subscriptions).

    A channel's path is `/channels/<ns>/<name>`; its Subscriptions' egresses reply to a `replyUrl` or
    discard, carry no filter, and its events are stored and delivered with their attributes untouched."""

    uid: str
    reference: Reference
    backend: Backend
    topic: str
    ingress_path: str
    egresses: tuple[Egress, ...] = ()
    bootstrap_servers: str = ""
    backend_config: dict[str, str] = field(default_factory=dict)
    auth: IngressAuth | None = None
    """OIDC on (authentication-oidc enabled): the audience a sender's token must name and who may send."""
    security: BackendSecurity | None = None
    """How clients connect to `connection` (TLS, SASL, NATS credentials), resolved from the Secret the
    Broker's ConfigMap names; None for a plain connection. JSON `security` (credentials included: the
    contract file is written 0600 and the control API serves it only with the token)."""

    @property
    def kind(self) -> str:
        return self.reference.kind

    @property
    def connection(self) -> str:
        """Which cluster of its backend holds the topic: Kafka bootstrap servers or a NATS URL."""
        return self.bootstrap_servers or self.backend_config.get("url", "")

    def to_json(self) -> dict[str, Any]:
        ingress: dict[str, Any] = {"path": self.ingress_path}
        if self.auth is not None:
            ingress["audience"] = self.auth.audience
            ingress["eventPolicies"] = [p.to_json() for p in self.auth.policies]
        obj: dict[str, Any] = {
            "uid": self.uid,
            "topics": [self.topic],
            "bootstrapServers": self.bootstrap_servers,
            "ingress": ingress,
            "egresses": [e.to_json() for e in self.egresses],
            "reference": self.reference.to_json(),
            "backend": self.backend,
            "backendConfig": dict(self.backend_config),
        }
        if self.security is not None:
            obj["security"] = self.security.to_json()
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Resource:
        return cls(
            uid=obj["uid"],
            reference=Reference.from_json(obj["reference"]),
            backend=obj.get("backend", "kafka"),
            topic=obj["topics"][0],
            ingress_path=obj["ingress"]["path"],
            egresses=tuple(Egress.from_json(e) for e in obj.get("egresses") or []),
            bootstrap_servers=obj.get("bootstrapServers", ""),
            backend_config=dict(obj.get("backendConfig") or {}),
            auth=_ingress_auth(obj["ingress"]),
            security=security_from_json(obj.get("backend", "kafka"), obj.get("security")),
        )


def _ingress_auth(ingress: dict[str, Any]) -> IngressAuth | None:
    if not ingress.get("audience"):
        return None
    return IngressAuth(str(ingress["audience"]),
                       tuple(IngressPolicy.from_json(p) for p in ingress.get("eventPolicies") or []))


@dataclass(frozen=True, slots=True)
class Source:
    """One source adapter: what it reads or makes (`config`, kind-specific) and where its events go.

    The egress carries the resolved sink as `destination`, the delivery settings, the ordering and,
    for kinds that read a log (KafkaSource), the consumer group. `config` is the kind's own, for
    example a KafkaSource's `{"bootstrapServers": "h:9092,...", "topics": [...], "initialOffset":
    "latest", "source": "/apis/v1/namespaces/<ns>/kafkasources/<name>", "ceOverrides": {...}}`.
    """

    uid: str
    reference: Reference
    egress: Egress
    config: dict[str, Any] = field(default_factory=dict)
    security: KafkaSecurity | None = None
    """A KafkaSource's `spec.net` (TLS, SASL) with its Secrets resolved; None for a plain connection."""

    @property
    def kind(self) -> str:
        return self.reference.kind

    def to_json(self) -> dict[str, Any]:
        obj = {"uid": self.uid, "reference": self.reference.to_json(), "egress": self.egress.to_json(),
               "config": dict(self.config)}
        if self.security is not None:
            obj["security"] = self.security.to_json()
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Source:
        security = obj.get("security")
        return cls(uid=obj["uid"], reference=Reference.from_json(obj["reference"]),
                   egress=Egress.from_json(obj["egress"]), config=dict(obj.get("config") or {}),
                   security=KafkaSecurity.from_json(security) if security else None)


RestartPolicy = Literal["Always", "OnFailure", "Never"]
BUILTINS = ("event_display", "heartbeats")
"""Nerve's own programs for Knative's sample images (`.../cmd/event_display`, `.../cmd/heartbeats`)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One container of a local Pod, run by the sources service as a process (embedded mode only).

    Control decides everything: the argv (`command` + `args`, or a `builtin` program with `args`), the
    final environment (the template's `env` with its fieldRefs resolved, `PORT`, and what a SinkBinding
    injects), the loopback `port` the Pod owns, and the pod's `restartPolicy`. The runner only runs it,
    restarts it as the policy says, writes its output to `log_path(root)` and reports what happened.
    """

    uid: str
    """`<pod uid>/<container name>`: a changed Pod is a new uid, so its process is started afresh."""
    reference: Reference
    """The Pod (kind "Pod")."""
    container: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    builtin: str = ""
    """One of BUILTINS, run with `args`; `command` is then empty."""
    env: tuple[tuple[str, str], ...] = ()
    port: int = 0
    restart_policy: RestartPolicy = "Always"
    grace_seconds: float = 30.0
    """terminationGracePeriodSeconds: between SIGTERM and SIGKILL when the Pod is deleted."""
    working_dir: str = ""
    serves: bool = False
    """Whether the program listens on `port` (the event display): Ready only once it accepts connections."""

    def log_path(self, root: Path) -> Path:
        return workload_log(root, self.reference.namespace, self.reference.name, self.container)

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"uid": self.uid, "reference": self.reference.to_json(), "container": self.container,
                               "command": list(self.command), "args": list(self.args),
                               "env": [{"name": k, "value": v} for k, v in self.env], "port": self.port,
                               "restartPolicy": self.restart_policy, "gracePeriodSeconds": self.grace_seconds,
                               "serves": self.serves}
        if self.builtin:
            obj["builtin"] = self.builtin
        if self.working_dir:
            obj["workingDir"] = self.working_dir
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Workload:
        policy = obj.get("restartPolicy", "Always")
        return cls(uid=obj["uid"], reference=Reference.from_json(obj["reference"]), container=obj["container"],
                   command=tuple(obj.get("command") or ()), args=tuple(obj.get("args") or ()),
                   builtin=obj.get("builtin", ""),
                   env=tuple((e["name"], e.get("value", "")) for e in obj.get("env") or []),
                   port=int(obj.get("port", 0)),
                   restart_policy=policy if policy in ("Always", "OnFailure", "Never") else "Always",
                   grace_seconds=float(obj.get("gracePeriodSeconds", 30.0)), working_dir=obj.get("workingDir", ""),
                   serves=bool(obj.get("serves", False)))


def workload_log(root: Path, namespace: str, pod: str, container: str) -> Path:
    """Where a local container's output goes (`nerve logs` reads it): `<root>/<namespace>/<pod>/<container>.log`.
    Namespaces, pod and container names are DNS labels or subdomains, so they are safe path parts."""
    return root / namespace / pod / f"{container}.log"


@dataclass(frozen=True, slots=True)
class Contract:
    generation: int = 0
    resources: tuple[Resource, ...] = ()
    sources: tuple[Source, ...] = ()
    workloads: tuple[Workload, ...] = ()
    features: Features = field(default_factory=Features)
    """Knative's feature flags in force (core/features.py), as control resolved them from the config-features
    ConfigMap and its own flags: the data plane acts on the same ones the statuses were built with."""
    oidc: OidcConfig | None = None
    """Set when authentication-oidc is enabled: the issuer and keys the ingress verifies tokens with."""

    def by_path(self) -> dict[str, Resource]:
        """Routable resources by ingress path; sources read topics and have no ingress."""
        return {r.ingress_path: r for r in self.resources if r.ingress_path}

    def to_json(self) -> dict[str, Any]:
        obj = {"generation": self.generation, "resources": [r.to_json() for r in self.resources],
               "sources": [s.to_json() for s in self.sources], "workloads": [w.to_json() for w in self.workloads],
               "features": self.features.to_json()}
        if self.oidc is not None:
            obj["oidc"] = self.oidc.to_json()
        return obj

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2)

    @classmethod
    def loads(cls, data: bytes) -> Contract:
        obj = orjson.loads(data)
        return cls(
            generation=int(obj.get("generation", 0)),
            resources=tuple(Resource.from_json(r) for r in obj.get("resources") or []),
            sources=tuple(Source.from_json(s) for s in obj.get("sources") or []),
            workloads=tuple(Workload.from_json(w) for w in obj.get("workloads") or []),
            features=Features.from_json(obj.get("features")),
            oidc=OidcConfig.from_json(obj.get("oidc")),
        )

    def same_content(self, other: Contract) -> bool:
        """Equal but for the generation: control bumps the generation only on a real change."""
        return (self.resources == other.resources and self.sources == other.sources
                and self.workloads == other.workloads and self.features == other.features
                and self.oidc == other.oidc)


def write_atomically(path: Path, contract: Contract) -> None:
    """Write the contract so a reader never sees half a file: a temporary file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".contract-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(contract.dumps())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> Contract:
    """The contract in a file, or in a directory: a mounted contract ConfigMap (`read_directory`)."""
    if path.is_dir():
        return read_directory(path)
    return Contract.loads(path.read_bytes())


# ------------------------------------------------------------------------------- as ConfigMaps (Kubernetes)
# On Kubernetes the operator writes the contract into ConfigMaps that ingress, dispatcher and sources mount
# (control/operator/contract_configmap.py). An object is at most 1 MiB (etcd's limit), which is what caps
# Knative's one contract ConfigMap (about 1,200 Triggers). So the contract is gzipped into `binaryData` and,
# when even that passes PART_BYTES, split into numbered parts: part 0 in the ConfigMap `<name>`, part i in
# `<name>-i`. The index (generation, part count, digest of the whole) sits beside part 0; a reader
# reassembles the parts and accepts them only when the digest matches, so parts of two generations (a
# kubelet refreshes each ConfigMap on its own) are never mixed: the last good contract stays in force.

INDEX_KEY = "contract.index.json"
"""The index's key (and file name, mounted) in the ConfigMap `<name>`."""
LEGACY_KEY = "contract.json"
"""A directory holding only this (the chart's initial, empty contract) is read as a plain file."""
PART_BYTES = 900 * 1024
"""The largest part: below 1 MiB with room for the ConfigMap's metadata."""


def part_key(index: int) -> str:
    return f"contract.json.gz.{index}"


@dataclass(frozen=True, slots=True)
class ContractParts:
    """The contract as the ConfigMaps carry it: the index (JSON) and the gzip's parts, in order."""

    index: dict[str, Any]
    parts: tuple[bytes, ...]


def to_parts(contract: Contract, part_bytes: int = PART_BYTES) -> ContractParts:
    # mtime=0: the same contract gives the same bytes, so an unchanged part is an unchanged ConfigMap.
    packed = gzip.compress(orjson.dumps(contract.to_json()), mtime=0)
    parts = tuple(packed[i:i + part_bytes] for i in range(0, len(packed), part_bytes)) or (b"",)
    index = {"generation": contract.generation, "parts": len(parts), "bytes": len(packed),
             "sha256": hashlib.sha256(packed).hexdigest()}
    return ContractParts(index, parts)


def from_parts(index: dict[str, Any], parts: list[bytes]) -> Contract:
    """The contract the parts make; ValueError when they do not make the one the index describes."""
    count = int(index["parts"])
    if len(parts) != count:
        raise ValueError(f"the index names {count} parts, {len(parts)} are there")
    packed = b"".join(parts)
    if hashlib.sha256(packed).hexdigest() != index["sha256"]:
        raise ValueError(f"the parts do not match the index of generation {index.get('generation')} "
                         "(some are of another generation)")
    return Contract.loads(gzip.decompress(packed))


def read_directory(path: Path) -> Contract:
    """A mounted contract ConfigMap (or several, in one projected volume): the index and its parts."""
    index_file = path / INDEX_KEY
    if not index_file.exists():
        return Contract.loads((path / LEGACY_KEY).read_bytes())
    index = orjson.loads(index_file.read_bytes())
    parts = []
    for i in range(int(index["parts"])):
        try:
            parts.append((path / part_key(i)).read_bytes())
        except FileNotFoundError:
            raise ValueError(f"part {i} of generation {index.get('generation')} is not mounted yet") from None
    return from_parts(index, parts)


def stamp_path(path: Path) -> Path:
    """The file whose change says the contract at `path` changed: the file, or a directory's index (a
    ConfigMap volume swaps its files together, through a symlink)."""
    if path.is_dir():
        return path / INDEX_KEY if (path / INDEX_KEY).exists() else path / LEGACY_KEY
    return path
