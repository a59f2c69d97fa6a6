"""What a Sequence produces: one Channel and one Subscription per step, and its status.

As `ev:pkg/reconciler/sequence/resources`: step i gets channel `<seq>-kn-sequence-<i>` (of the channel
template's kind) and Subscription `<seq>-kn-sequence-<i>` on it, whose subscriber is the step, whose
delivery is the step's, and whose reply is channel i+1 (the last step's reply is the Sequence's
`reply`, or none). The Sequence's address is channel 0's. A step that answers 2xx without an event
ends the flow for that event: its Subscription has nothing to send on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.conditions import cond, with_ready
from control.reconcilers.resources.flows import (
    OIDC_DISABLED,
    Observed,
    address_of,
    channel,
    channel_ref,
    object_reference,
    ready_condition,
    subscription,
    summary,
)


def channel_name(sequence: str, step: int) -> str:
    return f"{sequence}-kn-sequence-{step}"


def subscription_name(sequence: str, step: int) -> str:
    return f"{sequence}-kn-sequence-{step}"


@dataclass(frozen=True, slots=True)
class Children:
    channels: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]

    def all(self) -> list[dict[str, Any]]:
        return [*self.channels, *self.subscriptions]


def children(seq: dict[str, Any]) -> Children:
    meta, spec = seq["metadata"], seq["spec"]
    name, ns, template = meta["name"], meta["namespace"], spec["channelTemplate"]
    steps: list[dict[str, Any]] = spec["steps"]
    channels = [channel(template, channel_name(name, i), ns) for i in range(len(steps))]
    subscriptions = []
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        reply = spec.get("reply") if last else channel_ref(template, channel_name(name, i + 1), ns)
        subscriber = {k: v for k, v in step.items() if k != "delivery"}
        subscriptions.append(subscription(subscription_name(name, i), ns, template, channel_name(name, i),
                                          subscriber, reply, step.get("delivery")))
    return Children(channels, subscriptions)


def status(seq: dict[str, Any], channels: list[Observed], subscriptions: list[Observed],
           now: str | None = None) -> dict[str, Any]:
    """The Sequence's status from its children as the pass found them (`sequence_lifecycle.go`)."""
    out: dict[str, Any] = {"observedGeneration": seq["metadata"].get("generation")}
    out["channelStatuses"] = [{"channel": object_reference(c.want), "ready": ready_condition(c, seq)}
                              for c in channels]
    out["subscriptionStatuses"] = [{"subscription": object_reference(s.want), "ready": ready_condition(s, seq)}
                                   for s in subscriptions]
    address = address_of(channels[0] if channels else None)
    if address is not None:
        out["address"] = address
        addressable = cond("Addressable", True)
    else:
        addressable = cond("Addressable", None, "emptyAddress", "addressable is nil")
    conditions = [
        summary("ChannelsReady", channels, seq, "Channels", not_ready_is_false=False),
        summary("SubscriptionsReady", subscriptions, seq, "Subscriptions", not_ready_is_false=False),
        addressable,
        cond("EventPoliciesReady", True, *OIDC_DISABLED),
    ]
    out["conditions"] = with_ready(conditions, (seq.get("status") or {}).get("conditions"), now)
    return out
