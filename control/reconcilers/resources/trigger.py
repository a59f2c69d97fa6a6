"""What a Trigger produces: its egress on its Broker's topic (a consumer group) and its status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.api import kinds
from control.api.trigger import ORDER_ANNOTATION, dependency_of
from control.conditions import cond, is_ready, ready_of, with_ready
from control.reconcilers.resources.delivery import dead_letter_condition, egress_config
from control.resolver import Lookup, Resolver, Unresolvable
from control.settings import DEFAULT_CONSUMER_GROUP_TEMPLATE, ControlSettings
from core.contract import Egress, EgressConfig, Reference, Resource

OIDC_REASON = "authentication-oidc feature disabled"


@dataclass(frozen=True, slots=True)
class Built:
    status: dict[str, Any]
    egress: Egress | None
    """None while the Trigger cannot be subscribed."""


def consumer_group(trigger: dict[str, Any], settings: ControlSettings) -> str:
    meta = trigger["metadata"]
    return settings.consumer_group_template.format(namespace=meta["namespace"], name=meta["name"])


def _rank(trigger: dict[str, Any]) -> tuple[bool, str, str]:
    # One already subscribed keeps its group; otherwise the oldest (timestamps have whole seconds: then uid).
    conditions = {c.get("type"): c.get("status") for c in (trigger.get("status") or {}).get("conditions") or []}
    meta = trigger["metadata"]
    subscribed = conditions.get("SubscriptionReady") == "True"
    return not subscribed, str(meta.get("creationTimestamp", "")), str(meta.get("uid", ""))


def group_holder(trigger: dict[str, Any], others: list[dict[str, Any]],
                 settings: ControlSettings) -> dict[str, Any] | None:
    """The older Trigger that already has this Trigger's consumer group, or None.

    The default template is injective; a --consumer-group-template such as `{namespace}-{name}` is not
    (`a/b-c`, `a-b/c`), and two Triggers in one group would split each other's events. The one subscribed
    (or else the oldest) keeps it.
    """
    group, mine = consumer_group(trigger, settings), _rank(trigger)
    for other in others:
        if other["metadata"].get("uid") == trigger["metadata"].get("uid") or _rank(other) > mine:
            continue
        if consumer_group(other, settings) == group:
            return other
    return None


class GroupHolders:
    """The Triggers of one pass by consumer group, so a Trigger's holder (group_holder) is found among the
    Triggers of its own group rather than by scanning every Trigger: with 10,000 Triggers on a Broker the
    scan was 10^8 rank computations a pass. The lists hold the snapshot's objects, which the pass's writes
    refresh in place, so a holder is judged on the status as the pass has left it, as before."""

    def __init__(self, triggers: list[dict[str, Any]], settings: ControlSettings) -> None:
        self._settings = settings
        self._by_group: dict[str, list[dict[str, Any]]] = {}
        self._group_of: dict[int, str] = {}
        # The default template, knative-trigger.{namespace}.{name}, names every Trigger's group apart when no
        # namespace has a dot (an RFC 1123 label has none; admission refuses any other): then no Trigger has a
        # holder and the 10,000 groups need not be made here.
        self._distinct = settings.consumer_group_template == DEFAULT_CONSUMER_GROUP_TEMPLATE and \
            not any("." in t["metadata"]["namespace"] for t in triggers)
        if self._distinct:
            return
        for trigger in triggers:
            group = self._group_of[id(trigger)] = consumer_group(trigger, settings)
            self._by_group.setdefault(group, []).append(trigger)

    def holder(self, trigger: dict[str, Any]) -> dict[str, Any] | None:
        if self._distinct:
            return None
        name = self._group_of.get(id(trigger)) or consumer_group(trigger, self._settings)
        group = self._by_group.get(name, [])
        return group_holder(trigger, group, self._settings) if len(group) > 1 else None


def dependency_view(source: dict[str, Any]) -> tuple[Any, ...]:
    """What DependencyReady reads of a source: its generations and its Ready condition."""
    ready = ready_of(source) or {}
    return (source["metadata"].get("generation"), (source.get("status") or {}).get("observedGeneration"),
            ready.get("status"), ready.get("reason"), ready.get("message"))


def dependency_condition(trigger: dict[str, Any], objects: Lookup | None) -> dict[str, Any]:
    """DependencyReady from the source named in `knative.dev/dependency`, as Knative's Trigger reconciler
    propagates it (`checkDependencyAnnotation`): the source's Ready, once it has reconciled its generation."""
    ref = dependency_of(trigger)
    if ref is None:
        return cond("DependencyReady", True)
    kind = kinds.for_manifest(str(ref.get("apiVersion")), str(ref.get("kind")))
    if kind is None:
        return cond("DependencyReady", None, "ListerDoesNotExist",
                    f"Failed to retrieve lister: Nerve stores no {ref.get('apiVersion')}/{ref.get('kind')}")
    # Knative looks the dependency up in the Trigger's namespace (a different one is refused at admission).
    ns = trigger["metadata"]["namespace"]
    source = objects.get(kind.kind, ns, str(ref["name"])) if objects is not None else None
    if source is None:
        return cond("DependencyReady", False, "DependencyDoesNotExist",
                    f'Dependency does not exist: {kind.resource} "{ref["name"]}" not found')
    generation, observed = source["metadata"].get("generation"), (source.get("status") or {}).get("observedGeneration")
    if generation != observed:
        return cond("DependencyReady", None, "GenerationNotEqual",
                    f"The dependency's metadata.generation, {generation}, is not equal to its "
                    f"status.observedGeneration, {observed}.")
    ready = ready_of(source)
    if ready is None:
        return cond("DependencyReady", None, "DependencyNotConfigured", "Dependency has not yet been reconciled.")
    status = {"True": True, "False": False}.get(str(ready.get("status")))
    return cond("DependencyReady", status, str(ready.get("reason", "")), str(ready.get("message", "")))


def build(trigger: dict[str, Any], broker: dict[str, Any] | None, resource: Resource | None, resolver: Resolver,
          settings: ControlSettings, now: str | None = None, holder: dict[str, Any] | None = None,
          objects: Lookup | None = None, shared: Shared | None = None) -> Built:
    """`broker` carries the status of this pass; `resource` is its contract entry (None without one);
    `holder` is the Trigger that has this one's consumer group already (see group_holder); `objects` the
    pass's snapshot, where the source of a `knative.dev/dependency` annotation is looked up; `shared` the
    pass's conditions for plain Triggers (`Shared`), None to build every Trigger's own.

    TriggerReconciler reuses the result while what it read is unchanged (control/reconcilers/trigger.py
    `_inputs`): anything new this reads of another object must be added there."""
    meta, spec = trigger["metadata"], trigger["spec"]
    ns = meta["namespace"]
    status: dict[str, Any] = {"observedGeneration": meta["generation"]}
    broker_ready = _broker_condition(spec, broker)
    delivery = _delivery(spec, broker)
    if shared is not None and now is None and holder is None:
        key = shared.key(trigger, spec, delivery, broker_ready, resource)
        if key is not None:
            return _plain(trigger, spec, resource, settings, delivery, status, shared,
                          shared.conditions(key, broker_ready))
    conditions = [dependency_condition(trigger, objects), cond("OIDCIdentityCreated", True, OIDC_REASON), broker_ready]
    subscriber_uri, subscriber_ca = "", None
    try:
        # A Trigger written to an API server without Nerve's webhook may have no subscriber at all: it is
        # not Ready for that one reason, and the pass goes on with every other object.
        if not isinstance(spec.get("subscriber"), dict) or not (spec["subscriber"].get("ref")
                                                                 or spec["subscriber"].get("uri")):
            raise Unresolvable("SubscriberMissing", "spec.subscriber: required (a ref or a uri)")
        subscriber = resolver.resolve_address(spec["subscriber"], ns)
        subscriber_uri, subscriber_ca = subscriber.url, subscriber.ca_certs
        conditions.append(cond("SubscriberResolved", True))
    except Unresolvable as exc:
        conditions.append(cond("SubscriberResolved", False, "Unable to get the Subscriber's URI", exc.message))
    status["subscriberUri"] = subscriber_uri
    if subscriber_ca:
        status["subscriberCACerts"] = subscriber_ca
    conditions.append(dead_letter_condition((delivery or {}).get("deadLetterSink"), ns, resolver, status))
    egress: Egress | None = None
    if holder is not None:
        other = holder["metadata"]
        conditions.append(cond("SubscriptionReady", False, "ConsumerGroupConflict",
                               f"consumer group {consumer_group(trigger, settings)!r} is already Trigger "
                               f"{other['namespace']}/{other['name']}'s; the consumer group template must name "
                               "each Trigger's group apart (the default, knative-trigger.{namespace}.{name}, does)"))
    elif resource is not None and subscriber_uri and all(
        # As in Knative, a dependency that is not Ready holds back the Trigger's Ready, not its subscription.
        c["status"] == "True" for c in conditions if c["type"] not in ("BrokerReady", "DependencyReady")
    ):
        egress = _egress(trigger, settings, subscriber_uri, subscriber_ca, delivery, status)
        conditions.append(cond("SubscriptionReady", True))
    else:
        conditions.append(cond("SubscriptionReady", False, "NotSubscribed",
                               "the Trigger is not subscribed until its Broker and subscriber resolve"))
    status["conditions"] = with_ready(conditions, trigger.get("status", {}).get("conditions"), now)
    return Built(status, egress)


def _egress(trigger: dict[str, Any], settings: ControlSettings, subscriber_uri: str, subscriber_ca: str | None,
            delivery: dict[str, Any] | None, status: dict[str, Any], config: EgressConfig | None = None) -> Egress:
    meta, spec = trigger["metadata"], trigger["spec"]
    order = meta.get("annotations", {}).get(ORDER_ANNOTATION, "unordered")
    return Egress(
        uid=meta["uid"],
        reference=Reference(meta["uid"], meta["namespace"], meta["name"], "Trigger"),
        consumer_group=consumer_group(trigger, settings),
        destination=subscriber_uri,
        generation=meta["generation"],
        created=meta.get("creationTimestamp"),
        reply_to_original_topic=True,
        filter_attributes=dict((spec.get("filter") or {}).get("attributes") or {}),
        filters=list(spec.get("filters") or []),
        egress_config=config or egress_config(delivery, status.get("deadLetterSinkUri"),
                                              status.get("deadLetterSinkCACerts")),
        delivery_order="ordered" if order == "ordered" else "unordered",
        format=(delivery or {}).get("format"),
        destination_ca_certs=subscriber_ca,
    )


def _broker_condition(spec: dict[str, Any], broker: dict[str, Any] | None) -> dict[str, Any]:
    if broker is None:
        return cond("BrokerReady", False, "BrokerDoesNotExist", f"Broker {spec['broker']!r} does not exist")
    if not is_ready(broker):
        ready = next(c for c in broker["status"]["conditions"] if c["type"] == "Ready")
        return cond("BrokerReady", False, ready.get("reason", "BrokerNotReady"), ready.get("message", ""))
    return cond("BrokerReady", True)


def _delivery(spec: dict[str, Any], broker: dict[str, Any] | None) -> dict[str, Any] | None:
    # A Trigger's delivery replaces its Broker's whole, as Knative's MT broker does.
    delivery = spec.get("delivery")
    if delivery is None and broker is not None:
        delivery = (broker.get("spec") or {}).get("delivery")
    return delivery


def _plain(trigger: dict[str, Any], spec: dict[str, Any], resource: Resource | None, settings: ControlSettings,
           delivery: dict[str, Any] | None, status: dict[str, Any], shared: Shared,
           conditions: list[dict[str, Any]]) -> Built:
    """What `build` makes of a plain Trigger (see Shared), given its conditions: the same status and egress."""
    subscriber = spec["subscriber"]
    subscriber_uri, subscriber_ca = str(subscriber["uri"]), subscriber.get("CACerts") or None
    status["subscriberUri"] = subscriber_uri
    if subscriber_ca:
        status["subscriberCACerts"] = subscriber_ca
    egress = None if resource is None else _egress(trigger, settings, subscriber_uri, subscriber_ca, delivery, status,
                                                   shared.egress_config(delivery))
    status["conditions"] = conditions
    return Built(status, egress)


class Shared:
    """The conditions of a pass's plain Triggers, built once for all of them (issue 12: 10,000 new Triggers on
    one Broker all have the same seven conditions, and `with_ready` for each was a tenth of the pass).

    A plain Trigger is one whose conditions depend on nothing of its own: its subscriber a `uri` (no `ref`:
    it resolves, to that uri), no dead-letter sink, no `knative.dev/dependency`, no older Trigger holding its
    consumer group, and no conditions yet (so no lastTransitionTime to keep). Its conditions are then fixed
    by its Broker's Ready condition and whether the Broker has a contract entry: that is the key. Each Trigger
    gets copies of the kept list (flat dicts of strings: a copy shares nothing), so a later change to one
    Trigger's status cannot reach another's (tests/integration/test_control_scale.py).

    One per pass (the controller makes it with the pass): the kept conditions carry the time the pass built
    the first Trigger of their key as lastTransitionTime, which later Triggers of that pass share (before, each
    its own, microseconds apart)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._configs: dict[int, tuple[dict[str, Any], dict[str, Any], EgressConfig]] = {}

    def egress_config(self, delivery: dict[str, Any] | None) -> EgressConfig:
        """egress_config of a plain Trigger's delivery (no dead-letter sink), made once per delivery: the
        Triggers that inherit their Broker's (every Broker has one by default) read its one dict. Kept by
        the dict's identity, with the dict held so that its id stays its own, and with a copy compared so
        that a dict changed in place is made again; an EgressConfig is frozen and all scalars, so one may
        serve every egress."""
        if not delivery:
            return egress_config(delivery, None)
        kept = self._configs.get(id(delivery))
        if kept is not None and kept[0] is delivery and kept[1] == delivery:
            return kept[2]
        config = egress_config(delivery, None)
        self._configs[id(delivery)] = (delivery, dict(delivery), config)
        return config

    @staticmethod
    def key(trigger: dict[str, Any], spec: dict[str, Any], delivery: dict[str, Any] | None,
            broker_ready: dict[str, Any], resource: Resource | None) -> tuple[Any, ...] | None:
        """The key of a plain Trigger's conditions, or None for one that is not plain."""
        subscriber = spec.get("subscriber")
        # (Resolver.resolve_address answers a dest without `ref` with its uri, unchecked: it cannot fail.)
        if not isinstance(subscriber, dict) or subscriber.get("ref") is not None or not subscriber.get("uri"):
            return None
        if (delivery or {}).get("deadLetterSink") is not None:
            return None
        if (trigger.get("status") or {}).get("conditions") or dependency_of(trigger) is not None:
            return None
        return (broker_ready["status"], broker_ready.get("reason"), broker_ready.get("message"), resource is not None)

    def conditions(self, key: tuple[Any, ...], broker_ready: dict[str, Any]) -> list[dict[str, Any]]:
        kept = self._kept.get(key)
        if kept is None:
            subscribed = key[-1]
            conditions = [cond("DependencyReady", True), cond("OIDCIdentityCreated", True, OIDC_REASON), broker_ready,
                          cond("SubscriberResolved", True),
                          cond("DeadLetterSinkResolved", True, "DeadLetterSinkNotConfigured",
                               "No dead letter sink is configured."),
                          cond("SubscriptionReady", True) if subscribed else
                          cond("SubscriptionReady", False, "NotSubscribed",
                               "the Trigger is not subscribed until its Broker and subscriber resolve")]
            kept = self._kept[key] = with_ready(conditions, None)
        return [dict(c) for c in kept]
