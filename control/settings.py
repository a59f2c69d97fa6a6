"""Control-plane settings, parsed once at the edge (CLI flags or environment) and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOPIC_TEMPLATE = "knative-broker-{namespace}-{name}"
DEFAULT_CONSUMER_GROUP_TEMPLATE = "knative-trigger-{namespace}-{name}"


@dataclass(frozen=True, slots=True)
class ControlSettings:
    state_dir: Path
    """SQLite store and contract file live here."""
    ingress_base_url: str = "http://127.0.0.1:8080"
    """Brokers' status.address.url is this plus /<namespace>/<name>."""
    default_backend: str = "memory"
    """Backend of Brokers that name no class: memory, kafka or nats."""
    service_url_template: str = "http://{name}.{namespace}.svc.cluster.local"
    """How a `v1/Service` ref resolves when no stored Service carries a nerve.dev/url annotation."""
    topic_template: str = DEFAULT_TOPIC_TEMPLATE
    consumer_group_template: str = DEFAULT_CONSUMER_GROUP_TEMPLATE
    resync_seconds: float = 10.0
    """Every resync, everything is reconciled again, so a backend that comes back makes Brokers Ready."""
    delete_topics: bool = True
    """Delete a Broker's topic with the Broker; False keeps it for the backend's retention to expire."""

    @property
    def contract_path(self) -> Path:
        return self.state_dir / "contract.json"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "nerve.db"
