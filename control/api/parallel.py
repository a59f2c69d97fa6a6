"""Parallel (flows.knative.dev/v1): branches (filter, subscriber, reply, delivery), channelTemplate, reply.

As `ev:pkg/apis/flows/v1/parallel_{defaults,validation}.go`: at least one branch, each with a valid
subscriber and, when set, a valid filter, reply and delivery; the channel template defaulted like a
Channel's and then required; an optional reply for the branches without their own. Every field may
change on an update: the reconciler follows with the generated Channels and Subscriptions.
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

# `ev:pkg/apis/flows/v1/parallel_types.go` ParallelBranch.
BRANCH = schema.obj({
    "filter": schema.DESTINATION,
    "subscriber": schema.DESTINATION,
    "reply": schema.DESTINATION,
    "delivery": schema.DELIVERY,
})
SCHEMA = schema.resource(schema.obj({
    "branches": list_of(BRANCH),
    "channelTemplate": CHANNEL_TEMPLATE,
    "reply": schema.DESTINATION,
}))
# config/core/resources/parallel.yaml additionalPrinterColumns.
COLUMNS = (columns.NAME, columns.field("URL", "status", "address", "url"), columns.AGE, columns.READY,
           columns.REASON)


def default_parallel(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    namespace = obj["metadata"]["namespace"]
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_channel_template(spec, namespace, settings)
    branches = spec.get("branches")
    for branch in branches if isinstance(branches, list) else []:
        if not isinstance(branch, dict):
            continue
        for key in ("filter", "subscriber", "reply"):
            default_destination(branch.get(key), namespace)
        default_delivery(branch.get("delivery"), namespace)
    default_destination(spec.get("reply"), namespace)


def validate_parallel(obj: dict[str, Any]) -> list[FieldError]:
    namespace = obj["metadata"]["namespace"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object with branches")]
    errors: list[FieldError] = []
    branches = spec.get("branches")
    if branches is None or branches == []:
        errors.append(FieldError("spec.branches", "at least one branch is required"))
    elif not isinstance(branches, list):
        errors.append(FieldError("spec.branches", "must be a list of branches"))
    else:
        for i, branch in enumerate(branches):
            path = f"spec.branches[{i}]"
            if not isinstance(branch, dict):
                errors.append(FieldError(path, "must be an object with a subscriber"))
                continue
            if branch.get("subscriber") is None:
                errors.append(FieldError(f"{path}.subscriber", "required"))
            else:
                errors += validate_destination(branch["subscriber"], f"{path}.subscriber", namespace)
            for key in ("filter", "reply"):
                if branch.get(key) is not None:
                    errors += validate_destination(branch[key], f"{path}.{key}", namespace)
            errors += validate_delivery(branch.get("delivery"), f"{path}.delivery", namespace)
    errors += validate_channel_template(spec.get("channelTemplate"), "spec.channelTemplate")
    if spec.get("reply") is not None:
        errors += validate_destination(spec["reply"], "spec.reply", namespace)
    return errors
