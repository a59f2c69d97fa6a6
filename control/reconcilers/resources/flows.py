"""What Sequence and Parallel builders share: generated children and how their readiness is reported.

A flow compiles into Channels (of its channel template's concrete kind) and Subscriptions, all owned
by it. The reconciler tells the status builders what it found for each wanted child (`Observed`):
the stored object, nothing yet (created this pass, or the store had not caught up), or an object of
that name that the flow does not own (`foreign`: Nerve never takes over another's object).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from control.api import kinds
from control.api.admission import AdmissionSettings
from control.api.channelable import SUBSCRIBABLE_ANNOTATION
from control.conditions import cond

SUBSCRIPTION_API = "messaging.knative.dev/v1"
OIDC_DISABLED = ("OIDCDisabled", 'Feature "authentication-oidc" must be enabled to support Authorization')


@dataclass(frozen=True, slots=True)
class Observed:
    want: dict[str, Any]
    """The child as the builder wants it."""
    have: dict[str, Any] | None = None
    """The stored child (with its status); None until it exists."""
    foreign: bool = False
    """An object of the child's kind and name exists that the flow does not own."""


def defaulted(child: dict[str, Any]) -> dict[str, Any]:
    """A child as admission would store it (control's own writes skip admission; Knative's go through the
    webhook): a KafkaChannel gets its partitions and retention, a ref its namespace. Pure, and the same
    every pass, so an unchanged child is never written again."""
    kind = kinds.for_manifest(child["apiVersion"], child["kind"])
    if kind is not None:
        kind.default(child, AdmissionSettings())
    return child


def channel(template: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    """A channel of the template's concrete kind, its spec copied from the template's."""
    return defaulted({
        "apiVersion": template["apiVersion"],
        "kind": template["kind"],
        "metadata": {"name": name, "namespace": namespace, "annotations": {SUBSCRIBABLE_ANNOTATION: "v1"}},
        "spec": copy.deepcopy(template.get("spec") or {}),
    })


def channel_ref(template: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    """A Destination naming a generated channel (a reply, or a filter-less branch's subscriber)."""
    return {"ref": {"apiVersion": template["apiVersion"], "kind": template["kind"], "name": name,
                    "namespace": namespace}}


def subscription(name: str, namespace: str, template: dict[str, Any], channel_name: str,
                 subscriber: dict[str, Any], reply: dict[str, Any] | None,
                 delivery: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "channel": {"apiVersion": template["apiVersion"], "kind": template["kind"], "name": channel_name},
        "subscriber": copy.deepcopy(subscriber),
    }
    if reply is not None:
        spec["reply"] = copy.deepcopy(reply)
    if delivery is not None:
        spec["delivery"] = copy.deepcopy(delivery)
    return defaulted({"apiVersion": SUBSCRIPTION_API, "kind": "Subscription",
                      "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def object_reference(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
            "namespace": meta.get("namespace", "")}


def ready_condition(child: Observed, owner: dict[str, Any]) -> dict[str, Any]:
    """The child's own Ready condition, as Knative copies it into the flow's status."""
    if child.foreign:
        return cond("Ready", False, "NotOwned", not_owned(child.want, owner))
    if child.have is None:
        return cond("Ready", None, "NotCreated", f"{child.want['kind']} is being created")
    for c in (child.have.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return dict(c)
    return cond("Ready", None, "NoReady", f"{child.want['kind']} does not have Ready condition")


def not_owned(want: dict[str, Any], owner: dict[str, Any]) -> str:
    meta = want["metadata"]
    return (f"{want['kind']} {meta['namespace']}/{meta['name']} already exists and is not owned by "
            f"{owner['kind']} {owner['metadata']['name']}; delete it or rename the {owner['kind']}")


def summary(type_: str, children: list[Observed], owner: dict[str, Any], what: str,
            *, not_ready_is_false: bool) -> dict[str, Any]:
    """ChannelsReady / SubscriptionsReady: True when every child is Ready.

    A child another object holds the name of is False (the flow cannot be wired without it); a child not
    Ready yet is Unknown for a Sequence and False for a Parallel, as Knative marks them."""
    foreign = next((c for c in children if c.foreign), None)
    if foreign is not None:
        return cond(type_, False, "NotOwned", not_owned(foreign.want, owner))
    if children and all(ready_condition(c, owner).get("status") == "True" for c in children):
        return cond(type_, True)
    reason = f"{what}NotReady"
    message = f"{what} are not ready yet, or there are none"
    return cond(type_, False if not_ready_is_false else None, reason, message)


def address_of(child: Observed | None) -> dict[str, Any] | None:
    if child is None or child.have is None or child.foreign:
        return None
    address = (child.have.get("status") or {}).get("address") or {}
    # Whole, as Knative's setAddress: under transport-encryption its name and CACerts come along.
    return dict(address) if address.get("url") else None
