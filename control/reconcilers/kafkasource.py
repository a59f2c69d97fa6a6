"""The KafkaSource reconciler: probe its cluster, write status, emit its `sources[]` entry; on
deletion, delete its consumer group (never the user's topics)."""

from __future__ import annotations

from typing import Any

from channels.registry import BackendPool
from control.reconcilers.probe import KafkaProbes, ProbeKey
from control.reconcilers.resources import kafkasource as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Lookup, Resolver
from control.secrets import SecretProblem, kafka_source_net
from core.backend_security import KafkaSecurity
from core.contract import Source


def _probe_key(source: dict[str, Any], security: KafkaSecurity | None) -> ProbeKey:
    return build.bootstrap_servers(source), tuple(source["spec"]["topics"]), security


def _security(source: dict[str, Any], lookup: Lookup | None) -> KafkaSecurity | SecretProblem | None:
    """spec.net with its Secrets resolved, or why they cannot be used."""
    if lookup is None:
        return None
    try:
        return kafka_source_net(lookup, source["metadata"]["namespace"], source["spec"])
    except SecretProblem as exc:
        return exc


class KafkaSourceReconciler:
    kind = "KafkaSource"

    def __init__(self, pool: BackendPool, probes: KafkaProbes) -> None:
        self._pool = pool
        self._probes = probes

    async def reconcile_all(self, sources: list[dict[str, Any]], resolver: Resolver, writes: Writes,
                            snapshot: Snapshot | None = None) -> list[Source]:
        """Every source's cluster is probed at once, so a pass waits one bound, not one per source."""
        live = [source for source in sources if await writes.add_finalizer(source)]
        security = {source["metadata"]["uid"]: _security(source, snapshot) for source in live}

        def usable(source: dict[str, Any]) -> KafkaSecurity | None:
            found = security[source["metadata"]["uid"]]
            return None if isinstance(found, SecretProblem) else found

        probes = await self._probes.probe_all(
            _probe_key(source, usable(source)) for source in live
            if not isinstance(security[source["metadata"]["uid"]], SecretProblem))
        out: list[Source] = []
        for source in live:
            found = security[source["metadata"]["uid"]]
            if isinstance(found, SecretProblem):
                # Never probed nor run without the security it asked for: not Ready, with the field named.
                built = build.build(source, build.Probe(False, found.message), resolver, auth_problem=True)
            else:
                built = build.build(source, probes[_probe_key(source, found)], resolver, security=found)
            await writes.status(source, built.status)
            if built.source is not None:
                out.append(built.source)
        return out

    async def finalize(self, source: dict[str, Any], snapshot: Snapshot) -> None:
        connected = next((c for c in source.get("status", {}).get("conditions", [])
                          if c.get("type") == "ConnectionEstablished"), None)
        # A cluster that never answered holds no group of ours: a mistyped bootstrap server must not
        # leave the source undeletable.
        if connected is None or connected.get("status") != "True":
            return
        spec = source["spec"]
        found = _security(source, snapshot)
        if isinstance(found, SecretProblem):
            return  # its Secret went first: the cluster cannot be reached, offsets retention removes the group
        backend = await self._pool.get("kafka", build.bootstrap_servers(source), found)
        await backend.delete_group(spec["topics"][0], spec["consumerGroup"])
