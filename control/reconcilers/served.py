"""Which objects are Nerve's to reconcile, next to a real Knative Eventing (docs/kubernetes.md).

Knative's controllers reconcile Brokers of their classes and channels of their kinds; two controllers on
one object write its status in turn. With `--broker-classes` / `--channel-kinds` Nerve keeps to its own:
a Broker of another class, a Trigger on such a Broker, a channel of another kind (a Channel whose
template names one), and a Subscription to such a channel are another controller's, so the reconcile pass
leaves them out (no status, no finalizer, no contract entry) and the webhooks neither default nor refuse
them. Pure: the pass and the webhooks ask the same functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from control.api.broker import CLASS_ANNOTATION
from control.api.meta import mapping

Obj = dict[str, Any]
Find = Callable[[str, str, str], Obj | None]
"""(kind, namespace, name) -> the object, or None."""


@dataclass(frozen=True, slots=True)
class Served:
    broker_classes: frozenset[str]
    channel_kinds: frozenset[str]

    @classmethod
    def parse(cls, broker_classes: str, channel_kinds: str) -> Served:
        def split(value: str) -> frozenset[str]:
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return cls(split(broker_classes), split(channel_kinds))


def reference(obj: Obj) -> tuple[str, str] | None:
    """The (kind, name), in `obj`'s namespace, whose being Nerve's decides whether `obj` is."""
    spec = mapping(obj.get("spec"))
    if obj.get("kind") == "Trigger" and isinstance(spec.get("broker"), str):
        return "Broker", spec["broker"]
    if obj.get("kind") == "Subscription":
        channel = mapping(spec.get("channel"))
        if isinstance(channel.get("kind"), str) and isinstance(channel.get("name"), str):
            return channel["kind"], channel["name"]
    return None


def own(obj: Obj, served: Served, channel_kinds: frozenset[str], referenced: Obj | None = None) -> bool:
    """Whether `obj` is Nerve's. `channel_kinds` are every concrete channel kind Nerve knows (others, and
    kinds without a template, are judged as they are); `referenced` is the object `reference(obj)` names,
    when it exists (a Trigger on a Broker not yet created is Nerve's: it says the Broker is missing)."""
    kind = obj.get("kind")
    if kind == "Broker":
        broker_class = mapping(mapping(obj.get("metadata")).get("annotations")).get(CLASS_ANNOTATION)
        # No class yet: the defaulting webhook gives it Nerve's default class.
        return not broker_class or broker_class in served.broker_classes
    if kind in channel_kinds:
        return kind in served.channel_kinds
    if kind == "Channel":
        template = mapping(mapping(obj.get("spec")).get("channelTemplate")).get("kind")
        return not isinstance(template, str) or template not in channel_kinds or template in served.channel_kinds
    if kind in ("Trigger", "Subscription"):
        return referenced is None or own(referenced, served, channel_kinds)
    return True
