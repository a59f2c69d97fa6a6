"""What Sequence and Parallel (flows.knative.dev/v1) share: the channel template and its rules.

Both kinds compile into channels of the kind their `spec.channelTemplate` names (Knative creates the
template's concrete kind, e.g. InMemoryChannel, not a generic Channel). A template left out is
defaulted the way a Channel's is (control/api/channel.py: the default-ch-webhook ConfigMap, else
`--default-channel-kind`), and must then name a concrete channel kind Nerve runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import channel, schema
from control.api.schema import LEAF, OPEN
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

CHANNEL_TEMPLATE = schema.obj({"apiVersion": LEAF, "kind": LEAF, "spec": OPEN})


def default_channel_template(spec: dict[str, Any], namespace: str, settings: AdmissionSettings) -> None:
    if spec.get("channelTemplate") is None:
        spec["channelTemplate"] = channel.default_template(namespace, settings)


def validate_channel_template(template: Any, path: str) -> list[FieldError]:
    return channel.validate_template(template, path)
