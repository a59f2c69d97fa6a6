"""What every standalone service (`nerve control|ingress|dispatcher|sources`) takes, and the well-known ports.

The ports are named once here because more than one part needs them: the ingress listens on
INGRESS_PORT and control's Broker URLs point at it; the CLI's default server is the API_PORT.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.contract_watch import ContractFeed, ControlFeed, FileFeed
from core.observability import TelemetrySettings
from core.settings import Setting, parse, setting, settings_of

INGRESS_PORT = 8080
"""Broker ingress (Knative's broker-ingress listens on 8080 too)."""
API_PORT = 8081
"""Control API, /metrics, /healthz and /readyz of `nerve up` and of `python -m control`."""
DISPATCHER_PORT = 9090
"""/metrics, /healthz and /readyz of `python -m dispatcher`."""
SOURCES_PORT = 9091
"""/metrics, /healthz and /readyz of `python -m sources`."""


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    # Loopback unless told otherwise: a container (compose, Kubernetes) passes --host 0.0.0.0 itself.
    host: str = setting("127.0.0.1", "--host", "NERVE_HOST",
                        "Address to listen on (a container passes 0.0.0.0).")
    port: int = setting(0, "--port", "NERVE_PORT", "Port to listen on.", minimum=0)
    contract: Path = setting(Path(".nerve/contract.json"), "--contract", "NERVE_CONTRACT",
                             "The contract file control writes (a ConfigMap volume on Kubernetes).")
    contract_from: str = setting("file", "--contract-from", "NERVE_CONTRACT_FROM",
                                 "Where the contract comes from: `file` (--contract, on a shared volume) or "
                                 "`control` (long-poll the control API at --control-url; no shared volume).",
                                 choices=("file", "control"))
    control_url: str = setting("", "--control-url", "NERVE_CONTROL_URL",
                               "The control API (http://host:8081), for --contract-from control and "
                               "--eventtype-auto-create.")
    control_token: str = setting("", "--control-token", "NERVE_CONTROL_TOKEN",
                                 "The control API's bearer token (control's NERVE_TOKEN), for --control-url.")
    kafka_bootstrap: str = setting("", "--kafka-bootstrap", "KAFKA_BOOTSTRAP_SERVERS",
                                   "Default Kafka cluster (host:port,...) of Brokers whose config names none.")
    nats_url: str = setting("", "--nats-url", "NATS_URL", "Default NATS server (nats://host:port).")
    # Below the 10 s a container runtime waits between SIGTERM and SIGKILL (docker/podman stop), so a
    # drain ends on its own terms; compose and Kubernetes give more grace when they set this higher.
    drain_timeout: float = setting(8.0, "--drain-timeout", "NERVE_DRAIN_TIMEOUT",
                                   "On SIGTERM, seconds that requests (ingress, control API) and deliveries "
                                   "(dispatcher, sources) in flight get to finish; a delivery not finished by "
                                   "then is left unacked and delivered again.", minimum=0)


def service_settings(*, port: int, contract: bool = True) -> list[Setting]:
    """The shared settings of one service, listening on `port` by default."""
    follow = ["contract", "contract_from", "control_url", "control_token"] if contract else []
    names = ["host", "port", *follow, "kafka_bootstrap", "nats_url", "drain_timeout"]
    shared = [s.but(default=port) if s.name == "port" else s for s in settings_of(ServiceSettings, *names)]
    return [*shared, *settings_of(TelemetrySettings)]


def parse_service(prog: str, description: str | None, settings: Sequence[Setting],
                  argv: Sequence[str] | None = None) -> dict[str, Any]:
    """A service's command line (flags, then environment, then defaults), checked; exit 2 on an error."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    values = parse(parser, settings, argv)
    if values.get("contract_from") == "control" and not values.get("control_url"):
        parser.error("--contract-from control needs --control-url (NERVE_CONTROL_URL)")
    return values


def contract_feed(settings: ServiceSettings) -> ContractFeed:
    """The feed a data-plane service follows, as its settings choose."""
    if settings.contract_from == "control":
        return ControlFeed(settings.control_url, settings.control_token)
    return FileFeed(settings.contract)
