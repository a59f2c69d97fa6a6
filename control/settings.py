"""Control-plane settings, parsed once at the edge (`python -m control` or `nerve up`, from these definitions)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from channels.registry import BACKENDS
from control.api.broker import BROKER_CLASSES
from control.api.channel import CHANNEL_KINDS, KIND_FOR_BACKEND
from core import features
from core.cli_settings import INGRESS_PORT
from core.settings import format_template, setting

# Injective: a namespace is a DNS-1123 label and has no '.', so the first '.' after the prefix ends it
# (`a/b-c` and `a-b/c` no longer share `knative-broker-a-b-c`). Knative's KafkaChannel joins the same way
# (`knative-messaging-kafka.{{ .Namespace }}.{{ .Name }}`); Kafka allows '.' in topic names, and as
# names never contain '_' no two of these collide in Kafka's metric names either. NATS escapes '.'.
DEFAULT_TOPIC_TEMPLATE = "knative-broker.{namespace}.{name}"
DEFAULT_CONSUMER_GROUP_TEMPLATE = "knative-trigger.{namespace}.{name}"
# Knative's KafkaChannel topic (`channels.topic.template`) and Subscription group (`kafka.<ns>.<channel>.<uid>`).
DEFAULT_CHANNEL_TOPIC_TEMPLATE = "knative-messaging-kafka.{namespace}.{name}"
DEFAULT_SUBSCRIPTION_GROUP_TEMPLATE = "kafka.{namespace}.{channel}.{uid}"
_NAME_AND_NAMESPACE = format_template("name", "namespace")


def _channel_kind(value: object) -> str | None:
    return None if value in ("", *CHANNEL_KINDS) else f"expected one of {', '.join(CHANNEL_KINDS)} (or empty)"


def _names_of(known: tuple[str, ...]) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        unknown = [n.strip() for n in str(value).split(",") if n.strip() and n.strip() not in known]
        return f"unknown {', '.join(unknown)}: expected some of {', '.join(known)}" if unknown else None
    return check


@dataclass(frozen=True, slots=True)
class ControlSettings:
    state_dir: Path = setting(Path(".nerve"), "--state-dir", "NERVE_STATE_DIR",
                              "Where the SQLite store and the contract file live.")
    ingress_base_url: str = setting(f"http://127.0.0.1:{INGRESS_PORT}", "--ingress-base-url", "NERVE_INGRESS_BASE_URL",
                                    "Brokers' status.address.url is this plus /<namespace>/<name>.")
    ingress_https_base_url: str = setting(
        "https://127.0.0.1:8443", "--ingress-https-base-url", "NERVE_INGRESS_HTTPS_BASE_URL",
        "Under transport-encryption permissive or strict, Brokers' and Channels' https address is this plus their "
        "path.")
    ingress_ca_certs: str = setting(
        "", "--ingress-ca-certs", "NERVE_INGRESS_CA_CERTS",
        "File with the PEM CA certificate(s) of the ingress's https certificate, published as CACerts of https "
        "addresses; empty: none (clients verify with their trust store). nerve up publishes the CA it generates.")
    default_backend: str = setting("memory", "--backend", "NERVE_BACKEND", "Backend of Brokers that name no class.",
                                   choices=BACKENDS)
    service_url_template: str = setting(
        "", "--service-url-template", "NERVE_SERVICE_URL_TEMPLATE",
        "How a v1/Service ref resolves when the stored Service has no nerve.dev/url annotation and selects no "
        "local workload, e.g. http://{name}.{namespace}.svc.cluster.local; empty: such a ref does not resolve "
        "(the Trigger, Subscription or source is not Ready).", check=_NAME_AND_NAMESPACE)
    topic_template: str = setting(DEFAULT_TOPIC_TEMPLATE, "--topic-template", "NERVE_TOPIC_TEMPLATE",
                                  "Backend topic (or NATS stream) of a Broker.", check=_NAME_AND_NAMESPACE)
    consumer_group_template: str = setting(DEFAULT_CONSUMER_GROUP_TEMPLATE, "--consumer-group-template",
                                           "NERVE_CONSUMER_GROUP_TEMPLATE",
                                           "Consumer group (or NATS durable consumer) of a Trigger.",
                                           check=_NAME_AND_NAMESPACE)
    default_channel_kind: str = setting(
        "", "--default-channel-kind", "NERVE_DEFAULT_CHANNEL_KIND",
        "The channelTemplate kind of a Channel that names none, when no ConfigMap knative-eventing/"
        "default-ch-webhook gives one; empty: the kind for --backend (memory InMemoryChannel, kafka KafkaChannel, "
        "nats NatsJetStreamChannel).", check=_channel_kind)
    channel_topic_template: str = setting(DEFAULT_CHANNEL_TOPIC_TEMPLATE, "--channel-topic-template",
                                          "NERVE_CHANNEL_TOPIC_TEMPLATE",
                                          "Backend topic (or NATS stream) of a KafkaChannel or NatsJetStreamChannel "
                                          "(an InMemoryChannel's too); a NatsJetStreamChannel's "
                                          "spec.stream.overrideName wins.", check=_NAME_AND_NAMESPACE)
    subscription_consumer_group_template: str = setting(
        DEFAULT_SUBSCRIPTION_GROUP_TEMPLATE, "--subscription-consumer-group-template",
        "NERVE_SUBSCRIPTION_CONSUMER_GROUP_TEMPLATE",
        "Consumer group (or NATS durable consumer) of a Subscription; {uid} is the Subscription's, so a "
        "re-created Subscription starts afresh.", check=format_template("namespace", "channel", "name", "uid"))
    resync_seconds: float = setting(10.0, "--resync-seconds", "NERVE_RESYNC_SECONDS",
                                    "Every resync, everything is reconciled again, so a backend that comes back "
                                    "makes Brokers Ready.", minimum=0.1)
    delete_topics: bool = setting(True, "--delete-topics", "NERVE_DELETE_TOPICS",
                                  "Delete a Broker's topic or stream with the Broker; --keep-topics leaves it for "
                                  "the backend's retention to expire.", off_flag="--keep-topics")

    token: str = setting("", "--token", "NERVE_TOKEN",
                         "Bearer token the control API requires; empty: the one in <state-dir>/token, generated "
                         "(mode 0600) on first start.")
    allowed_hosts: str = setting("", "--allowed-hosts", "NERVE_ALLOWED_HOSTS",
                                 "Comma-separated host names the control API answers to besides localhost and IP "
                                 "addresses (a DNS-rebinding guard); * for any.")
    allowed_origins: str = setting("", "--allowed-origins", "NERVE_ALLOWED_ORIGINS",
                                   "Comma-separated browser origins (https://host:port) allowed to call the control "
                                   "API; none by default.")

    sink_binding_selection_mode: str = setting(
        "exclusion", "--sink-binding-selection-mode", "NERVE_SINK_BINDING_SELECTION_MODE",
        "On Kubernetes, which workloads SinkBindings may bind (Knative's SINK_BINDING_SELECTION_MODE): "
        "exclusion, all but those (or whose namespace is) labelled bindings.knative.dev/exclude=true; "
        "inclusion, only those labelled bindings.knative.dev/include=true.", choices=("exclusion", "inclusion"))
    broker_classes: str = setting(
        ",".join(BROKER_CLASSES), "--broker-classes", "NERVE_BROKER_CLASSES",
        "Comma-separated eventing.knative.dev/broker.class values whose Brokers (and their Triggers) Nerve "
        "reconciles and its webhooks default and check; others are left to another controller (next to a real "
        "Knative Eventing: docs/kubernetes.md).", check=_names_of(tuple(BROKER_CLASSES)))
    channel_kinds: str = setting(
        ",".join(CHANNEL_KINDS), "--channel-kinds", "NERVE_CHANNEL_KINDS",
        "Comma-separated channel kinds Nerve reconciles (with their Subscriptions, and Channels whose template "
        "names them); others are left to another controller.", check=_names_of(tuple(CHANNEL_KINDS)))
    transport_encryption: str = setting(
        "", "--transport-encryption", "NERVE_TRANSPORT_ENCRYPTION",
        "Knative's transport-encryption feature flag: disabled, permissive (http and https) or strict (https "
        "only); empty: as the ConfigMap knative-eventing/config-features says, else disabled.",
        check=features.flag_check(features.TRANSPORT_ENCRYPTION))
    authentication_oidc: str = setting(
        "", "--authentication-oidc", "NERVE_AUTHENTICATION_OIDC",
        "Knative's authentication-oidc feature flag: disabled or enabled; empty: as the ConfigMap "
        "knative-eventing/config-features says, else disabled.",
        check=features.flag_check(features.AUTHENTICATION_OIDC))
    default_authorization_mode: str = setting(
        "", "--default-authorization-mode", "NERVE_DEFAULT_AUTHORIZATION_MODE",
        "Knative's default-authorization-mode feature flag (who may send when no EventPolicy applies): "
        "allow-same-namespace, allow-all or deny-all; empty: as the ConfigMap knative-eventing/config-features "
        "says, else allow-same-namespace.", check=features.flag_check(features.DEFAULT_AUTHORIZATION_MODE))
    oidc_issuer: str = setting("", "--oidc-issuer", "NERVE_OIDC_ISSUER",
                               "The iss claim of the tokens control signs (authentication-oidc) and where verifiers "
                               "find /.well-known/openid-configuration; empty: the control API's own URL.")

    local_workloads: bool = False
    """Whether a runner in this process runs Pods as local processes (`nerve up` only; docs/sources.md)."""

    @property
    def channel_kind(self) -> str:
        """The default channelTemplate kind, --default-channel-kind or the one for --backend."""
        return self.default_channel_kind or KIND_FOR_BACKEND[self.default_backend]

    @property
    def feature_overrides(self) -> dict[str, str]:
        """The feature flags set on the command line (Knative key -> value), winning over config-features."""
        return {features.TRANSPORT_ENCRYPTION: self.transport_encryption,
                features.AUTHENTICATION_OIDC: self.authentication_oidc,
                features.DEFAULT_AUTHORIZATION_MODE: self.default_authorization_mode}

    @property
    def token_path(self) -> Path:
        return self.state_dir / "token"

    @property
    def contract_path(self) -> Path:
        return self.state_dir / "contract.json"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "nerve.db"

    @property
    def logs_dir(self) -> Path:
        """Where local workloads' output goes (core.contract.workload_log), read by the control API's logs."""
        return self.state_dir / "logs"


STORES = ("sqlite", "kubernetes")


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """`python -m control --store kubernetes`: control as the operator on a Kubernetes API server
    (control/operator/, docs/kubernetes.md). Ignored with the SQLite store."""

    store: str = setting("sqlite", "--store", "NERVE_STORE",
                         "Where control keeps the objects: `sqlite` (<state-dir>/nerve.db) or `kubernetes` (the "
                         "API server: control runs as the operator, watching Knative's kinds).", choices=STORES)
    kubeconfig: str = setting("", "--kubeconfig", "NERVE_KUBECONFIG",
                              "With --store kubernetes: the kubeconfig to use; empty: in a Pod its ServiceAccount "
                              "(in-cluster), elsewhere kubectl's ($KUBECONFIG, else ~/.kube/config).")
    namespace: str = setting("", "--namespace", "NERVE_NAMESPACE",
                             "With --store kubernetes: the namespace of control's own contract ConfigMap and Lease; "
                             "empty: the Pod's namespace (its ServiceAccount's), else `default`.")
    contract_configmap: str = setting("", "--contract-configmap", "NERVE_CONTRACT_CONFIGMAP",
                                      "With --store kubernetes: write the contract into this ConfigMap (gzip in "
                                      "binaryData, split across <name>-1, <name>-2, ... when large) for the data plane "
                                      "to mount; empty: none (the data plane long-polls control).")
    leader_elect: bool = setting(True, "--leader-elect", "NERVE_LEADER_ELECT",
                                 "With --store kubernetes: only the holder of the Lease reconciles, so control can run "
                                 "several replicas; --no-leader-elect for exactly one.")
    lease_name: str = setting("nerve-control", "--lease-name", "NERVE_LEASE_NAME",
                              "The coordination.k8s.io Lease the control replicas elect a leader with.")
    lease_duration: float = setting(15.0, "--lease-duration", "NERVE_LEASE_DURATION",
                                    "Seconds a standby waits after the leader's last renewal before taking over.",
                                    minimum=1)
    lease_renew_every: float = setting(2.0, "--lease-renew-every", "NERVE_LEASE_RENEW_EVERY",
                                       "Seconds between the leader's renewals (and a standby's attempts); well below "
                                       "--lease-duration.", minimum=0.1)
    webhook_port: int = setting(0, "--webhook-port", "NERVE_WEBHOOK_PORT",
                                "With --store kubernetes: serve the admission webhooks (validation, defaulting) over "
                                "TLS on this port; 0: none.", minimum=0)
    webhook_cert_dir: Path = setting(Path("/etc/nerve/webhook"), "--webhook-cert-dir", "NERVE_WEBHOOK_CERT_DIR",
                                     "The webhooks' serving certificate: tls.crt and tls.key in this directory (a "
                                     "kubernetes.io/tls Secret mounted there), and ca.crt, its CA.")
    oidc_keys_refresh: float = setting(300.0, "--oidc-keys-refresh", "NERVE_OIDC_KEYS_REFRESH",
                                       "With --store kubernetes and authentication-oidc: seconds between reads of the "
                                       "API server's service-account issuer keys (/openid/v1/jwks), which the "
                                       "contract carries to the ingress; a rotated key is in use after at most this.",
                                       minimum=1)
    webhook_service: str = setting("", "--webhook-service", "NERVE_WEBHOOK_SERVICE",
                                   "With --webhook-port: the Service (in --namespace, port 443) the API server calls "
                                   "the webhooks through; control points the conversion of the CRDs with older "
                                   "versions at it, with ca.crt as the caBundle. Empty: the CRDs are left as they are.")
