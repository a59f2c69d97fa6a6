"""Settings of the sources service, parsed once at the edge (`python -m sources` or `nerve up`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.settings import setting


@dataclass(frozen=True, slots=True)
class SourcesSettings:
    # The same flag as the dispatcher's: in `nerve up` one value bounds every delivering part.
    max_inflight: int = setting(100, "--max-inflight", "NERVE_MAX_INFLIGHT",
                                "Deliveries one Trigger or source (per topic) makes at once (unordered); bounds "
                                "memory and subscriber load.", minimum=1)
    default_timeout_s: float = 30.0
    """Per-attempt timeout when a delivery sets none."""
    drain_timeout_s: float = 10.0
    """On a contract change or shutdown, how long in-flight deliveries may finish before they are
    abandoned unacked (Kafka delivers them again)."""
    max_connections_per_host: int = setting(
        100, "--max-connections-per-host", "NERVE_MAX_CONNECTIONS_PER_HOST",
        "HTTP connections open at once to one destination (host and port); each destination has its own, "
        "so a slow subscriber delays only its own deliveries.", minimum=1)
    max_reply_bytes: int = 4 * 1024 * 1024
    state_dir: Path = setting(Path(".nerve"), "--state-dir", "NERVE_STATE_DIR",
                              "Where sources keep what outlives a restart (PingSource's last fired tick per "
                              "source, in pingsource.db); `nerve up` uses its own state dir.")
    ping_catch_up_s: float = 60.0
    """A PingSource tick that fell due while nothing ran is fired late after a restart if it is at most
    this old; older ones are skipped (docs/sources.md "PingSource")."""
    watch: str = setting("none", "--watch", "NERVE_WATCH",
                         "What ApiServerSources watch when the sources service runs on its own: `kubernetes`, the "
                         "API server (as each source's ServiceAccount, through the TokenRequest API; "
                         "docs/kubernetes.md); `none`, nothing (they say so). `nerve up` hands them its store.",
                         choices=("none", "kubernetes"))
    kubeconfig: str = setting("", "--kubeconfig", "NERVE_KUBECONFIG",
                              "With --watch kubernetes: the kubeconfig whose credentials request the "
                              "ServiceAccount tokens; empty: the Pod's own ServiceAccount (in a cluster).")
