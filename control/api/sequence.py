"""Sequence (flows.knative.dev/v1): steps (Destinations with their own delivery), channelTemplate, reply.

As `ev:pkg/apis/flows/v1/sequence_{defaults,validation}.go`: at least one step, each a valid
Destination with a valid delivery; the channel template defaulted like a Channel's and then required;
an optional reply. Every field may change on an update (Knative has no immutable Sequence field): the
reconciler adds, changes and removes the generated Channels and Subscriptions to match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import columns, schema
from control.api.delivery import default_delivery, validate_delivery
from control.api.destination import default_destination, validate_destination
from control.api.flows import CHANNEL_TEMPLATE, default_channel_template, validate_channel_template
from control.api.schema import list_of
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

# `ev:pkg/apis/flows/v1/sequence_types.go`: a step is an inline Destination plus `delivery`.
STEP = schema.extend(schema.DESTINATION, {"delivery": schema.DELIVERY})
SCHEMA = schema.resource(schema.obj({
    "steps": list_of(STEP),
    "channelTemplate": CHANNEL_TEMPLATE,
    "reply": schema.DESTINATION,
}))
# config/core/resources/sequence.yaml additionalPrinterColumns.
COLUMNS = (columns.NAME, columns.field("URL", "status", "address", "url"), columns.AGE, columns.READY,
           columns.REASON)


def default_sequence(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    namespace = obj["metadata"]["namespace"]
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_channel_template(spec, namespace, settings)
    steps = spec.get("steps")
    for step in steps if isinstance(steps, list) else []:
        default_destination(step, namespace)
        if isinstance(step, dict):
            default_delivery(step.get("delivery"), namespace)
    default_destination(spec.get("reply"), namespace)


def validate_sequence(obj: dict[str, Any]) -> list[FieldError]:
    namespace = obj["metadata"]["namespace"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object with steps")]
    errors: list[FieldError] = []
    steps = spec.get("steps")
    if steps is None or steps == []:
        errors.append(FieldError("spec.steps", "at least one step is required"))
    elif not isinstance(steps, list):
        errors.append(FieldError("spec.steps", "must be a list of steps"))
    else:
        for i, step in enumerate(steps):
            path = f"spec.steps[{i}]"
            errors += validate_destination(step, path, namespace)
            if isinstance(step, dict):
                errors += validate_delivery(step.get("delivery"), f"{path}.delivery", namespace)
    errors += validate_channel_template(spec.get("channelTemplate"), "spec.channelTemplate")
    if spec.get("reply") is not None:
        errors += validate_destination(spec["reply"], "spec.reply", namespace)
    return errors
