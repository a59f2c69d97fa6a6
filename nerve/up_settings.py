"""What `nerve up` takes: the settings of control, ingress, dispatcher and sources in one process.

Its own module, apart from nerve/up.py, so that `nerve get` and friends build their command line without
importing the whole embedded stack. Every flag comes from a definition owned by the part it configures
(control/settings.py, ingress/settings.py, dispatcher/settings.py, core/cli_settings.py); only the two
ports are `nerve up`'s own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channels.memory import MemorySettings
from control.settings import ControlSettings
from core.cli_settings import API_PORT, INGRESS_PORT, ServiceSettings
from core.eventtypes import EventTypeSettings
from core.observability import TelemetrySettings
from core.settings import Setting, build, same_as, setting, settings_of
from dispatcher.settings import DispatcherSettings
from ingress.settings import IngressSettings
from sources.settings import SourcesSettings


@dataclass(frozen=True, slots=True)
class UpSettings:
    state_dir: Path = same_as(ControlSettings, "state_dir")
    # A laptop default: `nerve up` listens on loopback, where a container listens on every address.
    host: str = same_as(ServiceSettings, "host", default="127.0.0.1",
                        help="Address the ingress and the control API listen on.")
    ingress_port: int = setting(INGRESS_PORT, "--ingress-port", "NERVE_INGRESS_PORT",
                                "Port of the Broker ingress (0 picks a free one).", minimum=0)
    api_port: int = setting(API_PORT, "--api-port", "NERVE_API_PORT",
                            "Port of the control API, /metrics, /healthz and /readyz (0 picks a free one).",
                            minimum=0)
    backend: str = same_as(ControlSettings, "default_backend")
    kafka_bootstrap: str = same_as(ServiceSettings, "kafka_bootstrap")
    nats_url: str = same_as(ServiceSettings, "nats_url")
    service_url_template: str = same_as(ControlSettings, "service_url_template")
    ingress: IngressSettings = field(default_factory=IngressSettings)
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    resync_seconds: float = same_as(ControlSettings, "resync_seconds")
    topic_template: str = same_as(ControlSettings, "topic_template")
    consumer_group_template: str = same_as(ControlSettings, "consumer_group_template")
    default_channel_kind: str = same_as(ControlSettings, "default_channel_kind")
    channel_topic_template: str = same_as(ControlSettings, "channel_topic_template")
    subscription_consumer_group_template: str = same_as(ControlSettings, "subscription_consumer_group_template")
    memory: MemorySettings = field(default_factory=MemorySettings)
    eventtypes: EventTypeSettings = field(default_factory=EventTypeSettings)
    delete_topics: bool = same_as(ControlSettings, "delete_topics")
    token: str = same_as(ControlSettings, "token")
    allowed_hosts: str = same_as(ControlSettings, "allowed_hosts")
    allowed_origins: str = same_as(ControlSettings, "allowed_origins")
    transport_encryption: str = same_as(ControlSettings, "transport_encryption")
    authentication_oidc: str = same_as(ControlSettings, "authentication_oidc")
    default_authorization_mode: str = same_as(ControlSettings, "default_authorization_mode")
    ingress_ca_certs: str = same_as(ControlSettings, "ingress_ca_certs",
                                    help="With --tls-cert: the PEM file of the CA that signed it, published as "
                                         "CACerts of https addresses; without --tls-cert nerve up publishes the CA it "
                                         "generates in <state-dir>/tls.")
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)


def command_line() -> list[Setting]:
    """The flags of `nerve up`, in the order `--help` and docs/configuration.md list them."""
    # --workers is the ingress's (its worker processes); the dispatcher runs in this process.
    dispatcher = [s for s in settings_of(DispatcherSettings) if s.name != "workers"]
    return [*settings_of(UpSettings), *settings_of(IngressSettings), *dispatcher,
            *settings_of(MemorySettings), *settings_of(EventTypeSettings, "eventtype_auto_create"),
            *settings_of(TelemetrySettings)]


def from_values(values: dict[str, Any]) -> UpSettings:
    """UpSettings from the parsed command line (`command_line()`'s names)."""
    ingress = build(IngressSettings, values, port=values["ingress_port"])
    # Sources share the dispatcher's flags (--max-inflight): one value for every delivering part.
    return build(UpSettings, values, ingress=ingress, dispatcher=build(DispatcherSettings, values),
                 sources=build(SourcesSettings, values), memory=build(MemorySettings, values),
                 eventtypes=build(EventTypeSettings, values), telemetry=build(TelemetrySettings, values))


def problems(settings: UpSettings) -> list[str]:
    """What no single flag shows: a Kafka or NATS default backend without a server to reach."""
    found = []
    if settings.backend == "kafka" and not settings.kafka_bootstrap:
        found.append("--backend kafka needs --kafka-bootstrap HOST:PORT (or KAFKA_BOOTSTRAP_SERVERS); "
                     "`make kafka` runs one")
    if bool(settings.ingress.tls_cert) != bool(settings.ingress.tls_key):
        found.append("--tls-cert and --tls-key go together")
    if settings.backend == "nats" and not settings.nats_url:
        found.append("--backend nats needs --nats-url nats://HOST:PORT (or NATS_URL); `make nats` runs one")
    if settings.backend == "memory" and settings.ingress.workers > 0:
        found.append("--workers needs --backend kafka or nats: the memory backend keeps events inside the "
                     "`nerve up` process, so its ingress cannot run in worker processes")
    if settings.ingress.workers > 0 and settings.transport_encryption.lower() in ("permissive", "strict"):
        found.append(f"--workers needs --transport-encryption disabled: under "
                     f"{settings.transport_encryption} the https listener runs in the `nerve up` process")
    if settings.ingress.workers > 0 and settings.authentication_oidc.lower() == "enabled":
        found.append("--workers needs --authentication-oidc disabled: the token check runs with the `nerve up` "
                     "process's issuer")
    return found
