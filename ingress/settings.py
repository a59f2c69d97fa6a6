"""Ingress settings, parsed once at the edge (`python -m ingress` or `nerve up`, from these definitions)."""

from __future__ import annotations

from dataclasses import dataclass

from core.cli_settings import INGRESS_PORT
from core.connections import ServerLimits
from core.hops import DEFAULT_MAX_TTL
from core.settings import setting


@dataclass(frozen=True, slots=True)
class IngressSettings:
    host: str = "127.0.0.1"
    port: int = INGRESS_PORT
    https_port: int = setting(8443, "--https-port", "NERVE_HTTPS_PORT",
                              "Port of the ingress's https listener (transport encryption; 0 picks a free one), "
                              "served with --tls-cert and --tls-key (nerve up: or the certificate it generates).",
                              minimum=0)
    tls_cert: str = setting("", "--tls-cert", "NERVE_TLS_CERT",
                            "PEM file of the ingress's https certificate (chain); with --tls-key, the ingress also "
                            "listens on --https-port.")
    tls_key: str = setting("", "--tls-key", "NERVE_TLS_KEY", "PEM file of the private key of --tls-cert.")
    max_body_bytes: int = setting(4 * 1024 * 1024, "--max-body-bytes", "NERVE_MAX_BODY_BYTES",
                                  "Larger event requests get 413.", minimum=1)
    max_ttl: int = setting(DEFAULT_MAX_TTL, "--max-ttl", "NERVE_MAX_TTL",
                           "Hops an event may make through a Broker (replies); a larger ce-knativebrokerttl is "
                           "capped to this.", minimum=1)
    """knativebrokerttl given to events that arrive without one (Knative's MAX_TTL)."""
    idle_timeout_s: float = setting(30.0, "--idle-timeout", "NERVE_IDLE_TIMEOUT",
                                    "Seconds a connection may stay idle, or take to send a request's headers, "
                                    "before it is closed.", minimum=0.1)
    body_timeout_s: float = setting(60.0, "--body-timeout", "NERVE_BODY_TIMEOUT",
                                    "Seconds a request's body may take to arrive after its headers before the "
                                    "connection is closed.", minimum=0.1)
    max_connections: int = setting(1000, "--max-connections", "NERVE_MAX_CONNECTIONS",
                                   "Connections open at once; past it the oldest idle one is closed, or the new "
                                   "one answered 503 when all are busy.", minimum=1)

    workers: int = setting(0, "--workers", "NERVE_WORKERS",
                           "Ingress processes sharing the port (SO_REUSEPORT), one core each. 0: one per core "
                           "under `nerve up` (Kafka or NATS backend; the memory backend keeps the ingress in "
                           "its process), one for `python -m ingress` (a container scales by replicas).",
                           minimum=0)

    @property
    def limits(self) -> ServerLimits:
        return ServerLimits(self.idle_timeout_s, self.body_timeout_s, self.max_connections)
