"""The KafkaSource reconciler: probe its cluster, write status, emit its `sources[]` entry; on
deletion, delete its consumer group (never the user's topics)."""

from __future__ import annotations

from typing import Any

from channels.registry import BackendPool
from control.reconcilers.probe import KafkaProbes, ProbeKey
from control.reconcilers.resources import kafkasource as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from core.contract import Source


def _probe_key(source: dict[str, Any]) -> ProbeKey:
    return build.bootstrap_servers(source), tuple(source["spec"]["topics"])


class KafkaSourceReconciler:
    kind = "KafkaSource"

    def __init__(self, pool: BackendPool, probes: KafkaProbes) -> None:
        self._pool = pool
        self._probes = probes

    async def reconcile_all(self, sources: list[dict[str, Any]], resolver: Resolver, writes: Writes) -> list[Source]:
        """Every source's cluster is probed at once, so a pass waits one bound, not one per source."""
        live = [source for source in sources if await writes.add_finalizer(source)]
        probes = await self._probes.probe_all(_probe_key(source) for source in live)
        out: list[Source] = []
        for source in live:
            built = build.build(source, probes[_probe_key(source)], resolver)
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
        backend = await self._pool.get("kafka", build.bootstrap_servers(source))
        await backend.delete_group(spec["topics"][0], spec["consumerGroup"])
