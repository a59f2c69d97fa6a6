"""What a Subscription produces: its egress on its channel's topic, its entry in the channel's
spec.subscribers, and its status.

Delivery is merged as Knative's Subscription reconciler merges it (`ev:pkg/reconciler/subscription/
subscription.go` resolveDeadLetterSink, deliverySpec), not as the spec words it (docs/channels.md):

- the dead-letter sink is the Subscription's, else the channel's (also when the Subscription sets
  other delivery fields);
- retry, backoffPolicy, backoffDelay, timeout and retryAfterMax are the Subscription's when it sets any
  of them, else the channel's when the Subscription has no `delivery` at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.api.channelable import OIDC_DISABLED
from control.api.meta import mapping
from control.api.trigger import ORDER_ANNOTATION
from control.conditions import cond, is_ready, ready_of, with_ready
from control.reconcilers.resources import channel as channel_build
from control.reconcilers.resources.delivery import egress_config
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolved, Resolver, Unresolvable
from control.settings import ControlSettings
from core.contract import Egress, Reference, Resource

RETRY_FIELDS = ("retry", "backoffPolicy", "backoffDelay", "timeout", "retryAfterMax")


@dataclass(frozen=True, slots=True)
class ChannelOf:
    """The object a Subscription's spec.channel names, and the concrete channel its events come from."""

    named: dict[str, Any] | None
    concrete: dict[str, Any] | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Built:
    status: dict[str, Any]
    egress: Egress | None
    """None while the Subscription cannot be added to its channel."""
    subscriber: dict[str, Any] | None
    """Its entry in the channel's spec.subscribers (duckv1.SubscriberSpec), with the egress."""


def channel_ref(subscription: dict[str, Any]) -> dict[str, Any]:
    return mapping(mapping(subscription.get("spec")).get("channel"))


def channel_of(subscription: dict[str, Any], snapshot: Snapshot, *, live: bool = True) -> ChannelOf:
    ref, ns = channel_ref(subscription), subscription["metadata"]["namespace"]
    kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
    named = snapshot.get(kind, ns, name) if live else snapshot.find(kind, ns, name)
    if named is None:
        return ChannelOf(None, None, f"{kind} {ns}/{name} does not exist")
    if kind != "Channel":
        return ChannelOf(named, named)
    backing = channel_build.backing_of(named, snapshot)
    if backing is None or (live and backing["metadata"].get("deletionTimestamp")):
        return ChannelOf(named, None, f"Channel {ns}/{name} has no backing channel yet")
    return ChannelOf(named, backing)


def on_channel(subscription: dict[str, Any], concrete: dict[str, Any]) -> bool:
    """Whether the Subscription reads the concrete channel: it names it, or names the Channel it backs
    (also once that Channel is gone and its backing channel is being deleted with it)."""
    ref, meta = channel_ref(subscription), concrete["metadata"]
    if subscription["metadata"]["namespace"] != meta["namespace"] or ref.get("name") != meta["name"]:
        return False
    if ref.get("kind") == concrete["kind"]:
        return True
    owners = meta.get("ownerReferences") or []
    return ref.get("kind") == "Channel" and any(o.get("kind") == "Channel" and o.get("name") == meta["name"]
                                                for o in owners)


def consumer_group(subscription: dict[str, Any], settings: ControlSettings) -> str:
    meta = subscription["metadata"]
    return settings.subscription_consumer_group_template.format(
        namespace=meta["namespace"], channel=channel_ref(subscription).get("name", ""), name=meta["name"],
        uid=meta.get("uid", ""))


def merged_delivery(subscription: dict[str, Any], channel: dict[str, Any] | None) -> dict[str, Any] | None:
    """The retry fields that apply (no dead-letter sink: that is resolved apart, see dead_letter)."""
    own = mapping(subscription.get("spec")).get("delivery")
    theirs = mapping(mapping((channel or {}).get("spec")).get("delivery"))
    if own is None:
        chosen = {k: v for k, v in theirs.items() if k in (*RETRY_FIELDS, "format")}
    else:
        own = mapping(own)
        chosen = {k: v for k, v in own.items() if k in RETRY_FIELDS} if any(k in own for k in RETRY_FIELDS) else {}
        if "format" in own:
            chosen["format"] = own["format"]
    return chosen or None


def _dead_letter(subscription: dict[str, Any], channel: dict[str, Any] | None, resolver: Resolver) -> str | None:
    """The dead-letter sink URL: the Subscription's, else the channel's resolved one; Unresolvable."""
    found = _dead_letter_address(subscription, channel, resolver)
    return None if found is None else found.url


def _dead_letter_address(subscription: dict[str, Any], channel: dict[str, Any] | None,
                         resolver: Resolver) -> Resolved | None:
    """The dead-letter sink (URL and CACerts): the Subscription's, else the channel's resolved one; Unresolvable."""
    meta, spec = subscription["metadata"], mapping(subscription.get("spec"))
    own = mapping(spec.get("delivery")).get("deadLetterSink")
    if own is not None:
        return resolver.resolve_address(own, meta["namespace"])
    if channel is None or mapping(mapping(channel.get("spec")).get("delivery")).get("deadLetterSink") is None:
        return None
    uri = mapping(channel.get("status")).get("deadLetterSinkUri")
    if not uri:
        channel_meta = channel["metadata"]
        raise Unresolvable("DeadLetterSinkResolveFailed", f"channel {channel_meta['namespace']}/"
                           f"{channel_meta['name']} didn't set status.deadLetterSinkURI")
    return Resolved(str(uri), mapping(channel.get("status")).get("deadLetterSinkCACerts") or None)


def build(subscription: dict[str, Any], found: ChannelOf, resource: Resource | None, resolver: Resolver,
          settings: ControlSettings, now: str | None = None) -> Built:
    """`found` is the channel as this pass left it (its status written), `resource` the concrete channel's
    contract entry (None while its topic is not there)."""
    meta, spec = subscription["metadata"], mapping(subscription.get("spec"))
    ns = meta["namespace"]
    physical: dict[str, Any] = {}
    status: dict[str, Any] = {"observedGeneration": meta["generation"], "physicalSubscription": physical}
    problems: list[dict[str, Any]] = []
    if found.concrete is None:
        problems.append(cond("ReferencesResolved", False, "ChannelReferenceFailed",
                             f"Failed to get spec.channel or backing channel: {found.problem}"))
    resolved: dict[str, str] = {}
    for key, field, reason in (("subscriberUri", "subscriber", "SubscriberResolveFailed"),
                               ("replyUri", "reply", "ReplyResolveFailed")):
        if spec.get(field) is None:
            continue
        try:
            address = resolver.resolve_address(spec[field], ns)
            resolved[key] = address.url
            if address.ca_certs:  # subscriberCACerts, replyCACerts
                resolved[f"{field}CACerts"] = address.ca_certs
        except Unresolvable as exc:
            resolved[key] = ""  # as Knative reports a URI that does not resolve
            problems.append(cond("ReferencesResolved", False, reason, f"Failed to resolve spec.{field}: "
                                 f"{exc.message}"))
    dead_letter: str | None = None
    dead_letter_ca: str | None = None
    try:
        dead = _dead_letter_address(subscription, found.concrete, resolver)
        if dead is not None:
            dead_letter, dead_letter_ca = dead.url, dead.ca_certs
    except Unresolvable as exc:
        problems.append(cond("ReferencesResolved", False, "DeadLetterSinkResolveFailed",
                             f"Failed to resolve spec.delivery.deadLetterSink: {exc.message}"))
    physical.update(resolved)
    if dead_letter:
        physical["deadLetterSinkUri"] = dead_letter
        if dead_letter_ca:
            physical["deadLetterSinkCACerts"] = dead_letter_ca
    conditions = [problems[0] if problems else cond("ReferencesResolved", True),
                  cond("OIDCIdentityCreated", True, OIDC_DISABLED)]
    egress: Egress | None = None
    subscriber: dict[str, Any] | None = None
    if problems:
        conditions += [cond("AddedToChannel", None, "NotAddedToChannel", "waiting for its references to resolve"),
                       cond("ChannelReady", None, "NotAddedToChannel", "waiting for its references to resolve")]
    elif resource is None:
        assert found.concrete is not None
        why = ready_of(found.concrete) or {}
        conditions += [cond("AddedToChannel", False, "PhysicalChannelSyncFailed",
                            f"the channel takes no Subscriptions yet: {why.get('message') or why.get('reason') or ''}"),
                       _channel_not_ready(found.concrete)]
    else:
        assert found.concrete is not None
        delivery = merged_delivery(subscription, found.concrete)
        order = mapping(meta.get("annotations")).get(ORDER_ANNOTATION, "unordered")
        reply = resolved.get("replyUri")
        egress = Egress(
            uid=meta["uid"],
            reference=Reference(meta["uid"], ns, meta["name"], "Subscription"),
            consumer_group=consumer_group(subscription, settings),
            destination=resolved["subscriberUri"],
            generation=meta["generation"],
            created=meta.get("creationTimestamp"),
            reply_url=reply,
            egress_config=egress_config(delivery, dead_letter, dead_letter_ca),
            delivery_order="ordered" if order == "ordered" else "unordered",
            format=mapping(delivery).get("format"),
            destination_ca_certs=resolved.get("subscriberCACerts"),
            reply_url_ca_certs=resolved.get("replyCACerts") if reply else None,
        )
        subscriber = subscriber_spec(subscription, resolved, delivery, dead_letter, dead_letter_ca)
        conditions.append(cond("AddedToChannel", True))
        ready = is_ready(found.concrete)
        conditions.append(cond("ChannelReady", True) if ready else _channel_not_ready(found.concrete))
    status["conditions"] = with_ready(conditions, mapping(subscription.get("status")).get("conditions"), now)
    return Built(status, egress, subscriber)


def _channel_not_ready(channel: dict[str, Any]) -> dict[str, Any]:
    """ChannelReady=False with the channel's own Ready reason and message."""
    why = ready_of(channel) or {}
    return cond("ChannelReady", False, str(why.get("reason") or "ChannelNotReady"),
                str(why.get("message") or "the channel is not Ready"))


def subscriber_spec(subscription: dict[str, Any], resolved: dict[str, str], delivery: dict[str, Any] | None,
                    dead_letter: str | None, dead_letter_ca: str | None = None) -> dict[str, Any]:
    """duckv1.SubscriberSpec as Knative's reconciler writes it into channel.spec.subscribers."""
    meta = subscription["metadata"]
    entry: dict[str, Any] = {"name": meta["name"], "uid": meta["uid"], "generation": meta["generation"],
                             "subscriberUri": resolved["subscriberUri"]}
    if resolved.get("subscriberCACerts"):
        entry["subscriberCACerts"] = resolved["subscriberCACerts"]
    if resolved.get("replyUri"):
        entry["replyUri"] = resolved["replyUri"]
        if resolved.get("replyCACerts"):
            entry["replyCACerts"] = resolved["replyCACerts"]
    spec_delivery = {k: v for k, v in (delivery or {}).items() if k != "format"}
    if dead_letter:
        spec_delivery["deadLetterSink"] = {"uri": dead_letter}
        if dead_letter_ca:
            spec_delivery["deadLetterSink"]["CACerts"] = dead_letter_ca
    if spec_delivery:
        entry["delivery"] = spec_delivery
    return entry
