"""Subscription (messaging.knative.dev/v1): a channel's events to a subscriber, its replies onward.

`spec.channel` is required and immutable and names a Channel or one of the concrete channel kinds;
`subscriber` is required, `reply` and `delivery` are optional and may change
(`ev:pkg/apis/messaging/v1/subscription_{defaults,validation}.go`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import channel, columns, schema
from control.api.delivery import default_delivery, validate_delivery
from control.api.destination import default_destination, validate_destination, validate_kreference
from control.api.meta import mapping
from control.api.trigger import ORDER_ANNOTATION
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

API_VERSION = "messaging.knative.dev/v1"
SCHEMA = schema.resource(schema.obj({
    "channel": schema.KREFERENCE,
    "subscriber": schema.DESTINATION,
    "reply": schema.DESTINATION,
    "delivery": schema.DELIVERY,
}))
COLUMNS = (columns.NAME, columns.AGE, columns.READY, columns.REASON)
# What a Subscription's spec.channel may name: the generic Channel or a concrete kind, at its version.
SUBSCRIBABLE = {"Channel": channel.API_VERSION, **channel.CHANNEL_KINDS}


def default_subscription(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_destination(spec.get("subscriber"), meta["namespace"])
    default_destination(spec.get("reply"), meta["namespace"])
    default_delivery(spec.get("delivery"), meta["namespace"])


def _validate_channel_ref(ref: Any, namespace: str) -> list[FieldError]:
    if ref is None:
        return [FieldError("spec.channel", "required: the Subscription must reference a channel")]
    errors = validate_kreference(ref, "spec.channel", namespace)
    kind, api_version = mapping(ref).get("kind"), mapping(ref).get("apiVersion")
    if errors or not isinstance(kind, str):
        return errors
    if kind not in SUBSCRIBABLE:
        known = ", ".join(f"{k} ({v})" for k, v in SUBSCRIBABLE.items())
        return [FieldError("spec.channel.kind", f"{kind!r} is not a channel kind Nerve runs; use one of {known}")]
    if api_version != SUBSCRIBABLE[kind]:
        return [FieldError("spec.channel.apiVersion", f"{api_version!r} is not served for {kind}; "
                           f"use {SUBSCRIBABLE[kind]}")]
    return []


def validate_subscription(obj: dict[str, Any]) -> list[FieldError]:
    namespace, spec = obj["metadata"]["namespace"], obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors = _validate_channel_ref(spec.get("channel"), namespace)
    if spec.get("subscriber") is None:
        errors.append(FieldError("spec.subscriber", "required: the Subscription must reference a subscriber"))
    else:
        errors += validate_destination(spec["subscriber"], "spec.subscriber", namespace)
    if spec.get("reply") is not None:
        errors += validate_destination(spec["reply"], "spec.reply", namespace)
    errors += validate_delivery(spec.get("delivery"), "spec.delivery", namespace)
    order = mapping(obj["metadata"].get("annotations")).get(ORDER_ANNOTATION)
    if order is not None and order not in ("ordered", "unordered"):
        errors.append(FieldError(f"metadata.annotations.{ORDER_ANNOTATION}", f"{order!r} must be ordered or "
                                 "unordered"))
    return errors


def validate_subscription_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    before, after = mapping(old.get("spec")).get("channel"), mapping(new.get("spec")).get("channel")
    if before != after:
        return [FieldError("spec.channel", "immutable: only subscriber, reply and delivery may change; delete and "
                           "re-create the Subscription to move it to another channel")]
    return []
