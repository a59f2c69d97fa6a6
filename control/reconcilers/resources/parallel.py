"""What a Parallel produces: an ingress channel, per branch a channel and two Subscriptions, its status.

As `ev:pkg/reconciler/parallel/resources`: the ingress channel `<p>-kn-parallel`; for branch i the
channel `<p>-kn-parallel-<i>`, the filter Subscription `<p>-kn-parallel-filter-<i>` on the ingress
channel (with a filter: subscriber = the filter, reply = the branch channel, so only what the filter
answers with enters the branch; without one: subscriber = the branch channel), and the subscriber
Subscription `<p>-kn-parallel-<i>` on the branch channel (the branch's subscriber and delivery, reply
= the branch's reply, else the Parallel's). The Parallel's address is the ingress channel's.
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


def ingress_channel_name(parallel: str) -> str:
    return f"{parallel}-kn-parallel"


def branch_channel_name(parallel: str, branch: int) -> str:
    return f"{parallel}-kn-parallel-{branch}"


def filter_subscription_name(parallel: str, branch: int) -> str:
    return f"{parallel}-kn-parallel-filter-{branch}"


def subscription_name(parallel: str, branch: int) -> str:
    return f"{parallel}-kn-parallel-{branch}"


@dataclass(frozen=True, slots=True)
class Children:
    ingress: dict[str, Any]
    branch_channels: list[dict[str, Any]]
    filter_subscriptions: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]

    def all(self) -> list[dict[str, Any]]:
        return [self.ingress, *self.branch_channels, *self.filter_subscriptions, *self.subscriptions]


def children(par: dict[str, Any]) -> Children:
    meta, spec = par["metadata"], par["spec"]
    name, ns, template = meta["name"], meta["namespace"], spec["channelTemplate"]
    branches: list[dict[str, Any]] = spec["branches"]
    ingress = channel(template, ingress_channel_name(name), ns)
    branch_channels = [channel(template, branch_channel_name(name, i), ns) for i in range(len(branches))]
    filters, subscribers = [], []
    for i, branch in enumerate(branches):
        into_branch = channel_ref(template, branch_channel_name(name, i), ns)
        if branch.get("filter") is None:
            filters.append(subscription(filter_subscription_name(name, i), ns, template, ingress_channel_name(name),
                                        into_branch, None, None))
        else:
            filters.append(subscription(filter_subscription_name(name, i), ns, template, ingress_channel_name(name),
                                        branch["filter"], into_branch, None))
        reply = branch.get("reply") if branch.get("reply") is not None else spec.get("reply")
        subscribers.append(subscription(subscription_name(name, i), ns, template, branch_channel_name(name, i),
                                        branch["subscriber"], reply, branch.get("delivery")))
    return Children(ingress, branch_channels, filters, subscribers)


def status(par: dict[str, Any], ingress: Observed, branch_channels: list[Observed],
           filter_subscriptions: list[Observed], subscriptions: list[Observed],
           now: str | None = None) -> dict[str, Any]:
    """The Parallel's status from its children as the pass found them (`parallel_lifecycle.go`)."""
    out: dict[str, Any] = {"observedGeneration": par["metadata"].get("generation")}
    out["ingressChannelStatus"] = {"channel": object_reference(ingress.want), "ready": ready_condition(ingress, par)}
    out["branchStatuses"] = [
        {
            "filterSubscriptionStatus": {"subscription": object_reference(f.want), "ready": ready_condition(f, par)},
            "filterChannelStatus": {"channel": object_reference(c.want), "ready": ready_condition(c, par)},
            "subscriberSubscriptionStatus": {"subscription": object_reference(s.want),
                                             "ready": ready_condition(s, par)},
        }
        for f, c, s in zip(filter_subscriptions, branch_channels, subscriptions, strict=True)
    ]
    address = address_of(ingress)
    if address is not None:
        out["address"] = address
        addressable = cond("Addressable", True)
    else:
        addressable = cond("Addressable", False, "emptyAddress", "addressable is nil")
    conditions = [
        summary("ChannelsReady", [ingress, *branch_channels], par, "Channels", not_ready_is_false=True),
        summary("SubscriptionsReady", [*filter_subscriptions, *subscriptions], par, "Subscriptions",
                not_ready_is_false=True),
        addressable,
        cond("EventPoliciesReady", True, *OIDC_DISABLED),
    ]
    out["conditions"] = with_ready(conditions, (par.get("status") or {}).get("conditions"), now)
    return out
