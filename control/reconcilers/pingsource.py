"""The PingSource reconciler: status and the `sources[]` entry; nothing to clean up on deletion."""

from __future__ import annotations

from typing import Any

from control.reconcilers.resources import pingsource as build
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from core.contract import Source


class PingSourceReconciler:
    kind = "PingSource"

    async def reconcile_all(self, sources: list[dict[str, Any]], resolver: Resolver, writes: Writes) -> list[Source]:
        out: list[Source] = []
        for source in sources:
            built = build.build(source, resolver)
            await writes.status(source, built.status)
            if built.source is not None:
                out.append(built.source)
        return out
