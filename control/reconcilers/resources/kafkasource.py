"""What a KafkaSource produces: one `sources[]` entry of the contract and its status.

It reads the user's topics on the user's cluster: Nerve creates and deletes no topic for it, only
its consumer group is Nerve's to clean up. Its status says whether that cluster answered (Knative's
ConnectionEstablished, reason ClientCreationFailed) and whether every topic exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.conditions import cond, with_ready
from control.reconcilers.resources.delivery import dead_letter_condition, egress_config
from control.reconcilers.resources.source import resolve_sink_address
from control.resolver import Resolver
from core.backend_security import KafkaSecurity
from core.contract import Egress, Reference, Source


@dataclass(frozen=True, slots=True)
class Probe:
    """What asking the cluster answered: `reachable` None while no answer came within the bound."""

    reachable: bool | None
    message: str = ""
    missing_topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Built:
    status: dict[str, Any]
    source: Source | None
    """None while the sink does not resolve."""


def bootstrap_servers(source: dict[str, Any]) -> str:
    return ",".join(source["spec"]["bootstrapServers"])


def build(source: dict[str, Any], probe: Probe, resolver: Resolver, now: str | None = None, *,
          security: KafkaSecurity | None = None, auth_problem: bool = False) -> Built:
    """`security` is spec.net resolved; with `auth_problem` (a Secret missing or unusable, said by the
    probe's message) the source gets no contract entry: it never reads without what it asked for."""
    meta, spec = source["metadata"], source["spec"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    status: dict[str, Any] = {"observedGeneration": meta["generation"]}
    sink_provided, sink = resolve_sink_address(source, resolver)
    sink_uri = sink.url
    conditions = [sink_provided]
    if sink_uri:
        status["sinkUri"] = sink_uri
        if sink.ca_certs:
            status["sinkCACerts"] = sink.ca_certs
    servers = bootstrap_servers(source)
    if probe.reachable is None:
        conditions.append(cond("ConnectionEstablished", None, "ConnectionPending", probe.message))
    elif not probe.reachable:
        conditions.append(cond("ConnectionEstablished", False, "ClientCreationFailed", probe.message))
    else:
        conditions.append(cond("ConnectionEstablished", True))
        if probe.missing_topics:
            conditions.append(cond("TopicsReady", False, "TopicsNotFound",
                                   f"no topic {', '.join(probe.missing_topics)} on Kafka at {servers}"))
        else:
            conditions.append(cond("TopicsReady", True))
    conditions.append(dead_letter_condition((spec.get("delivery") or {}).get("deadLetterSink"), ns, resolver, status))
    status["consumers"] = spec.get("consumers", 1)
    status["conditions"] = with_ready(conditions, source.get("status", {}).get("conditions"), now)
    if not sink_uri or auth_problem:
        return Built(status, None)
    reference = Reference(uid, ns, name, "KafkaSource")
    egress = Egress(
        uid=uid,
        reference=reference,
        consumer_group=spec["consumerGroup"],
        destination=sink_uri,
        generation=meta["generation"],
        egress_config=egress_config(spec.get("delivery"), status.get("deadLetterSinkUri"),
                                    status.get("deadLetterSinkCACerts")),
        delivery_order="unordered" if spec.get("ordering", "ordered") == "unordered" else "ordered",
        destination_ca_certs=sink.ca_certs,
    )
    config = {
        "bootstrapServers": servers,
        "topics": list(spec["topics"]),
        "initialOffset": "earliest" if spec.get("initialOffset") == "earliest" else "latest",
        "source": f"/apis/v1/namespaces/{ns}/kafkasources/{name}",
        "ceOverrides": dict((spec.get("ceOverrides") or {}).get("extensions") or {}),
    }
    return Built(status, Source(uid=uid, reference=reference, egress=egress, config=config, security=security))
