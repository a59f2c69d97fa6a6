"""What the Sequence and Parallel reconcilers share: writing generated children and removing stale ones.

A flow's children are plain Channels and Subscriptions, reconciled by their own reconcilers (topics,
egresses, statuses); the flow only keeps them as its builder says (Writes.ensure_child) and reads
their statuses back into its own.
"""

from __future__ import annotations

from typing import Any

from control.reconcilers.garbage import owned_by
from control.reconcilers.resources.flows import Observed
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.store.base import is_deleting

# The Subscription reconciler writes a channel's `spec.subscribers`; the flow leaves them alone.
CHANNEL_KEEP = ("subscribers",)


async def ensure(owner: dict[str, Any], want: dict[str, Any], snapshot: Snapshot, writes: Writes) -> Observed:
    """Create or update one child; what the pass found for it."""
    meta = want["metadata"]
    existing = snapshot.find(want["kind"], meta["namespace"], meta["name"])
    if existing is not None and not owned_by(existing, owner):
        return Observed(want, foreign=True)
    if existing is not None and want["kind"] == "Subscription" and not _same_channel(existing, want):
        # spec.channel of a Subscription is immutable (a channel template of another kind): as Knative does,
        # delete it and create it anew in a later round.
        await writes.delete(existing)
        return Observed(want)
    keep = () if want["kind"] == "Subscription" else CHANNEL_KEEP
    stored = await writes.ensure_child(owner, want, existing, keep=keep)
    return Observed(want, stored)


def _same_channel(existing: dict[str, Any], want: dict[str, Any]) -> bool:
    have, wanted = (existing.get("spec") or {}).get("channel") or {}, want["spec"]["channel"]
    return all(have.get(key) == wanted[key] for key in ("apiVersion", "kind", "name"))


async def remove_unwanted(owner: dict[str, Any], wanted: list[dict[str, Any]], snapshot: Snapshot,
                          writes: Writes) -> None:
    """Delete the children the owner made that its spec no longer asks for (a removed step, a channel of
    the previous template kind). Their finalizers clean their topics, streams and consumer groups."""
    keys = {(w["kind"], w["metadata"]["name"]) for w in wanted}
    uid = owner["metadata"]["uid"]
    for obj in list(snapshot.objects()):
        controllers = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
        if any(r.get("uid") == uid for r in controllers) and not is_deleting(obj) \
                and (obj["kind"], obj["metadata"]["name"]) not in keys:
            await writes.delete(obj)
