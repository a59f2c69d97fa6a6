"""KafkaChannel (messaging.knative.dev/v1beta1): a channel with a Kafka topic of its own.

`numPartitions`, `replicationFactor` (both default 1) and `retentionDuration` (ISO 8601, default
PT168H, the topic's `retention.ms`) shape the topic when it is created; Nerve does not alter an existing
topic, so all three are immutable (`ekb:control-plane/pkg/apis/messaging/v1beta1/kafka_channel_*.go`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import channelable, schema
from control.api.delivery import INT32_MAX
from control.api.meta import mapping
from control.api.schema import LEAF
from core.durations import parse_ms
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

API_VERSION = "messaging.knative.dev/v1beta1"
DEFAULT_RETENTION = "PT168H"
TOPIC_FIELDS = ("numPartitions", "replicationFactor", "retentionDuration")
SPEC_FIELDS: dict[str, schema.Node] = {
    **channelable.SPEC_FIELDS, "numPartitions": LEAF, "replicationFactor": LEAF, "retentionDuration": LEAF,
}
SCHEMA = schema.resource(schema.obj(SPEC_FIELDS))
COLUMNS = channelable.COLUMNS
_INT16_MAX = 2**15 - 1  # Kafka's replication factor is a short


def default_kafka_channel(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    channelable.default_channelable(obj)
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("numPartitions", 1)
        spec.setdefault("replicationFactor", 1)
        spec.setdefault("retentionDuration", DEFAULT_RETENTION)


def _count(value: Any, path: str, most: int) -> list[FieldError]:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return [FieldError(path, f"{value!r} must be an integer >= 1")]
    if value > most:
        return [FieldError(path, f"{value!r} must be at most {most}")]
    return []


def validate_topic_fields(spec: dict[str, Any], path: str) -> list[FieldError]:
    """The topic's shape, also where a Channel's channelTemplate.spec carries it."""
    errors: list[FieldError] = []
    if "numPartitions" in spec:
        errors += _count(spec["numPartitions"], f"{path}.numPartitions", INT32_MAX)
    if "replicationFactor" in spec:
        errors += _count(spec["replicationFactor"], f"{path}.replicationFactor", _INT16_MAX)
    if "retentionDuration" in spec:
        try:
            if parse_ms(spec["retentionDuration"]) <= 0:
                errors.append(FieldError(f"{path}.retentionDuration", "must be greater than 0"))
        except ValueError as exc:
            errors.append(FieldError(f"{path}.retentionDuration", str(exc)))
    return errors


def validate_kafka_channel(obj: dict[str, Any]) -> list[FieldError]:
    errors = channelable.validate_channelable(obj)
    return errors + validate_topic_fields(mapping(obj.get("spec")), "spec")


def validate_kafka_channel_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    errors = channelable.validate_channelable_update(old, new)
    old_spec, new_spec = mapping(old.get("spec")), mapping(new.get("spec"))
    for key in TOPIC_FIELDS:
        if old_spec.get(key) != new_spec.get(key):
            errors.append(FieldError(f"spec.{key}", f"immutable: changed from {old_spec.get(key)!r} to "
                                     f"{new_spec.get(key)!r}; the topic keeps the shape it was created with"))
    return errors
