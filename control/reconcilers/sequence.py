"""The Sequence reconciler: its Channels and Subscriptions kept as the builder says, its status from theirs."""

from __future__ import annotations

from typing import Any

from control.reconcilers import flows
from control.reconcilers.resources import sequence as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes


class SequenceReconciler:
    kind = "Sequence"

    async def reconcile(self, seq: dict[str, Any], snapshot: Snapshot, writes: Writes) -> None:
        built = build.children(seq)
        channels = [await flows.ensure(seq, c, snapshot, writes) for c in built.channels]
        subscriptions = [await flows.ensure(seq, s, snapshot, writes) for s in built.subscriptions]
        await flows.remove_unwanted(seq, built.all(), snapshot, writes)
        await writes.status(seq, build.status(seq, channels, subscriptions))
