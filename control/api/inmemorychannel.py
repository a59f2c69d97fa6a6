"""InMemoryChannel (messaging.knative.dev/v1): a channel on the memory backend; just the Channelable duck."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import channelable, schema
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

API_VERSION = "messaging.knative.dev/v1"
# `ev:pkg/apis/messaging/v1/in_memory_channel_types.go`: ChannelableSpec and nothing else.
SPEC_FIELDS = channelable.SPEC_FIELDS
SCHEMA = schema.resource(schema.obj(SPEC_FIELDS))
COLUMNS = channelable.COLUMNS


def default_in_memory_channel(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    channelable.default_channelable(obj)


def validate_in_memory_channel(obj: dict[str, Any]) -> list[FieldError]:
    return channelable.validate_channelable(obj)
