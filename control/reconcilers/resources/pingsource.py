"""What a PingSource produces: its status and, while its sink resolves, its `sources[]` entry.

PingSource owns nothing in a backend: its ticks are made by the sources service (sources/ping.py) from
the contract entry, so the reconciler writes no topic, group or finalizer.

Contract config: {"schedule": croniter's six fields (seconds LAST, control/api/pingsource.py
normalize_schedule), "timezone": IANA name or "" (the system's zone), "contentType": "...",
"data": "text" or "dataBase64": "...", "source": "/apis/v1/namespaces/<ns>/pingsources/<name>",
"ceOverrides": {...}}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.api.pingsource import DEFAULT_SCHEDULE, normalize_schedule
from control.conditions import cond
from control.reconcilers.resources.source import contract_source, resolve_sink_address, source_path, source_status
from control.resolver import Resolver
from core.contract import Source

EVENT_TYPE = "dev.knative.sources.ping"
PLURAL = "pingsources"


@dataclass(frozen=True, slots=True)
class Built:
    status: dict[str, Any]
    source: Source | None
    """None while the sink does not resolve."""


def config(obj: dict[str, Any]) -> dict[str, Any]:
    """The data plane's view of the spec (already admitted, so the schedule parses)."""
    spec = obj.get("spec") or {}
    schedule = normalize_schedule(spec.get("schedule") or DEFAULT_SCHEDULE)
    out: dict[str, Any] = {
        "schedule": schedule.cron,
        "timezone": spec.get("timezone") or schedule.timezone,
        "contentType": spec.get("contentType") or "",
        "source": source_path(obj, PLURAL),
    }
    if spec.get("dataBase64"):
        out["dataBase64"] = spec["dataBase64"]
    elif spec.get("data"):
        out["data"] = spec["data"]
    return out


def build(obj: dict[str, Any], resolver: Resolver, now: str | None = None) -> Built:
    sink_provided, sink = resolve_sink_address(obj, resolver)
    sink_uri = sink.url
    # Knative's Deployed reflects the shared mt-ping adapter Deployment; here the sources service runs
    # every PingSource of the contract (in `nerve up`, in the same process), so it is True.
    conditions = [sink_provided, cond("Deployed", True)]
    attributes = [{"type": EVENT_TYPE, "source": source_path(obj, PLURAL)}]
    status = source_status(obj, conditions, sink_uri, attributes, now=now, sink_ca_certs=sink.ca_certs)
    if not sink_uri:
        return Built(status, None)
    return Built(status, contract_source(obj, sink_uri, config(obj), sink_ca_certs=sink.ca_certs))
