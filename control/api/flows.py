"""What Sequence and Parallel (flows.knative.dev/v1) share: the channel template and its rules.

Both kinds compile into Channels of the kind their `spec.channelTemplate` names (Knative creates the
template's concrete kind, e.g. InMemoryChannel, not a generic Channel); a template left out is
defaulted the way a Channel's is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import schema
from control.api.schema import LEAF, OPEN
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

FLOWS = "flows.knative.dev/v1"
# Knative's shipped `default-ch-webhook` default (`clusterDefault`).
DEFAULT_CHANNEL_TEMPLATE: dict[str, Any] = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}

CHANNEL_TEMPLATE = schema.obj({"apiVersion": LEAF, "kind": LEAF, "spec": OPEN})


def default_channel_template(spec: dict[str, Any], namespace: str, settings: AdmissionSettings) -> None:
    if spec.get("channelTemplate") is None:
        spec["channelTemplate"] = dict(DEFAULT_CHANNEL_TEMPLATE)


def validate_channel_template(template: Any, path: str) -> list[FieldError]:
    if not isinstance(template, dict):
        return [FieldError(path, "must be an object with apiVersion and kind")]
    errors = [FieldError(f"{path}.{key}", "required")
              for key in ("apiVersion", "kind") if not isinstance(template.get(key), str) or not template.get(key)]
    if errors:
        return errors
    # kinds imports this module (through sequence and parallel): look the registry up only when validating.
    from control.api import kinds

    found = kinds.for_manifest(template["apiVersion"], template["kind"])
    if found is None or not found.kind.endswith("Channel") or found.kind == "Channel":
        errors.append(FieldError(path, f"{template['apiVersion']}/{template['kind']} is not a channel kind Nerve "
                                 f"runs; use one of {', '.join(channel_kinds()) or 'none yet'}"))
    elif template.get("spec") is not None and not isinstance(template["spec"], dict):
        errors.append(FieldError(f"{path}.spec", "must be an object"))
    return errors


def channel_kinds() -> list[str]:
    """The concrete channel kinds a template may name (`messaging.knative.dev/v1/InMemoryChannel`, ...)."""
    from control.api import kinds

    return [f"{k.api_version}/{k.kind}" for k in kinds.KINDS if k.kind.endswith("Channel") and k.kind != "Channel"]
