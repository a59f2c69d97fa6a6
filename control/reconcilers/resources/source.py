"""What every source kind's builder shares: the sink (SinkProvided, `status.sinkUri`), the SourceStatus
fields (`ceAttributes`, `observedGeneration`) and its `sources[]` entry of the contract.

A kind's builder (resources/pingsource.py, ...) calls `resolve_sink`, adds its own conditions, builds the
status with `source_status` and, while the sink resolves, the contract entry with `contract_source`.
"""

from __future__ import annotations

from typing import Any

from control.api.source import overrides_of
from control.conditions import cond, with_ready
from control.resolver import Resolved, Resolver, Unresolvable
from core.contract import Egress, EgressConfig, Reference, Source

# How a source that names no DeliverySpec retries a failed send: Knative's adapters send with the
# CloudEvents SDK's default back-off (ApiServerSource: exponential from 50 ms, 5 retries), so a sink
# that restarts for a second loses nothing. Beyond that the event is dropped with a log line and
# nerve_dispatcher_dropped_total, as Knative's adapters log "Event is lost".
DEFAULT_SOURCE_DELIVERY = EgressConfig(retry=5, backoff_policy="exponential", backoff_delay_ms=50)


def resolve_sink(obj: dict[str, Any], resolver: Resolver) -> tuple[dict[str, Any], str]:
    """The SinkProvided condition and the sink URL ("" while it does not resolve)."""
    provided, sink = resolve_sink_address(obj, resolver)
    return provided, sink.url


def resolve_sink_address(obj: dict[str, Any], resolver: Resolver) -> tuple[dict[str, Any], Resolved]:
    """The SinkProvided condition and the sink's URL ("" while it does not resolve) and CACerts."""
    spec, namespace = obj.get("spec") or {}, obj["metadata"]["namespace"]
    sink = spec.get("sink")
    if sink is None:
        return cond("SinkProvided", False, "SinkEmpty", "Sink has resolved to empty."), Resolved("")
    try:
        resolved = resolver.resolve_address(sink, namespace)
    except Unresolvable as exc:
        return cond("SinkProvided", False, "NotFound", exc.message), Resolved("")
    return cond("SinkProvided", True), resolved


def source_status(obj: dict[str, Any], conditions: list[dict[str, Any]], sink_uri: str,
                  ce_attributes: list[dict[str, str]] | None = None, *, now: str | None = None,
                  sink_ca_certs: str | None = None, **extra: Any) -> dict[str, Any]:
    """Knative's SourceStatus: conditions (Ready from them), observedGeneration, sinkUri (sinkCACerts),
    ceAttributes."""
    status: dict[str, Any] = {"observedGeneration": obj["metadata"]["generation"]}
    if sink_uri:
        status["sinkUri"] = sink_uri
        if sink_ca_certs:
            status["sinkCACerts"] = sink_ca_certs
    if ce_attributes:
        status["ceAttributes"] = [dict(a) for a in ce_attributes]
    status.update(extra)
    status["conditions"] = with_ready(conditions, (obj.get("status") or {}).get("conditions"), now)
    return status


def source_path(obj: dict[str, Any], plural: str) -> str:
    """Knative's `source` attribute of a source's own events: /apis/v1/namespaces/<ns>/<plural>/<name>."""
    meta = obj["metadata"]
    return f"/apis/v1/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


def contract_source(obj: dict[str, Any], sink_uri: str, config: dict[str, Any], *,
                    egress_config: EgressConfig = DEFAULT_SOURCE_DELIVERY, sink_ca_certs: str | None = None) -> Source:
    """The `sources[]` entry: the sink as the egress destination, `config` the kind's own, and the
    ceOverrides under `config["ceOverrides"]` (a map of extension to value) for the data plane."""
    meta = obj["metadata"]
    reference = Reference(meta["uid"], meta["namespace"], meta["name"], obj["kind"])
    egress = Egress(uid=meta["uid"], reference=reference, consumer_group="", destination=sink_uri,
                    generation=meta["generation"], egress_config=egress_config, destination_ca_certs=sink_ca_certs)
    return Source(uid=meta["uid"], reference=reference, egress=egress,
                  config={**config, "ceOverrides": overrides_of(obj.get("spec") or {})})
