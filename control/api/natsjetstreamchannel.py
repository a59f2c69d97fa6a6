"""NatsJetStreamChannel (messaging.knative.dev/v1alpha1): a channel with a JetStream stream of its own.

`spec.stream.overrideName` names the stream; `spec.stream.config` shapes it, mapped onto the NATS
backend's stream settings (channels/nats.py, TopicSpec.config) by `stream_config`. What Knative's NATS
channel does with consumer templates, its dispatcher Deployment, placement, mirrors and sources is not
Nerve's to do: those fields are accepted with a notice (`natss:pkg/apis/messaging/v1alpha1/nats_jetstream_types.go`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from control.api import channelable, schema
from control.api.meta import mapping
from control.api.schema import LEAF, OPEN, list_of, unimplemented
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

API_VERSION = "messaging.knative.dev/v1alpha1"

_NOT_RUN = "Nerve's dispatcher runs in-process and makes its own consumers"
_STREAM_CONFIG = schema.obj({
    "additionalSubjects": unimplemented(list_of(LEAF), "the stream takes only the channel's own subject"),
    "retention": LEAF, "maxConsumers": LEAF, "maxMsgs": LEAF, "maxBytes": LEAF, "discard": LEAF, "maxAge": LEAF,
    "maxMsgSize": LEAF, "storage": LEAF, "replicas": LEAF,
    "noAck": unimplemented(LEAF, "publishes are always acknowledged (202 only after the stream holds the event)"),
    "duplicateWindow": LEAF,
    "placement": unimplemented(OPEN, "the stream is placed by the NATS server"),
    "mirror": unimplemented(OPEN, "a channel's stream holds only its own events"),
    "sources": unimplemented(OPEN, "a channel's stream holds only its own events"),
})
SPEC_FIELDS: dict[str, schema.Node] = {
    **channelable.SPEC_FIELDS,
    "stream": schema.obj({"overrideName": LEAF, "config": _STREAM_CONFIG}),
    "consumerConfigTemplate": unimplemented(OPEN, _NOT_RUN),
    "deploymentSpecTemplate": unimplemented(OPEN, _NOT_RUN),
}
SCHEMA = schema.resource(schema.obj(SPEC_FIELDS))
COLUMNS = channelable.COLUMNS

_ENUMS = {"retention": ("Limits", "Interest", "Work"), "discard": ("Old", "New"), "storage": ("File", "Memory")}
# spec.stream.config field -> the NATS backend's TopicSpec.config key.
_NUMBERS = {"maxConsumers": "max.consumers", "maxMsgs": "max.msgs", "maxBytes": "max.bytes",
            "maxMsgSize": "max.msg.size", "replicas": "replicas"}
_DURATIONS = {"maxAge": "max.age.seconds", "duplicateWindow": "duplicate.window.seconds"}
# Go's time.Duration text (metav1.Duration): `1h30m`, `90s`, `500ms`.
_GO_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def go_duration_seconds(text: Any) -> float:
    """Seconds in a Go duration string; ValueError naming what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"{text!r} is not a duration (e.g. 1h, 30m, 90s)")
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _GO_PART.match(text, pos)
        if match is None:
            raise ValueError(f"{text!r} is not a duration (e.g. 1h, 30m, 90s)")
        total += float(match.group(1)) * _GO_UNIT[match.group(2)]
        pos = match.end()
    return total


def default_nats_jetstream_channel(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    channelable.default_channelable(obj)


def validate_stream(stream: Any, path: str) -> list[FieldError]:
    """spec.stream, also where a Channel's channelTemplate.spec carries it."""
    if stream is None:
        return []
    if not isinstance(stream, dict):
        return [FieldError(path, "must be an object with overrideName and/or config")]
    errors: list[FieldError] = []
    name = stream.get("overrideName")
    # Nerve's NATS backend escapes every other character of a stream name (`_` becomes `_5F`), so only
    # these make a stream named exactly overrideName.
    if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,200}", name)):
        errors.append(FieldError(f"{path}.overrideName", f"{name!r} must be 1 to 200 letters, digits and '-' "
                                 "(Nerve escapes other characters, so the stream would not have this name)"))
    config = stream.get("config")
    if config is None:
        return errors
    if not isinstance(config, dict):
        return [*errors, FieldError(f"{path}.config", "must be an object")]
    for key, allowed in _ENUMS.items():
        if key in config and config[key] not in allowed:
            errors.append(FieldError(f"{path}.config.{key}", f"{config[key]!r} must be one of {', '.join(allowed)}"))
    for key in _NUMBERS:
        value = config.get(key)
        if key in config and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            errors.append(FieldError(f"{path}.config.{key}", f"{value!r} must be an integer >= 0"))
    for key in _DURATIONS:
        if key in config:
            try:
                go_duration_seconds(config[key])
            except ValueError as exc:
                errors.append(FieldError(f"{path}.config.{key}", str(exc)))
    return errors


def stream_config(spec: dict[str, Any]) -> dict[str, str]:
    """spec.stream.config as the NATS backend's TopicSpec.config (validated spec: no errors here)."""
    config = mapping(mapping(spec.get("stream")).get("config"))
    out: dict[str, str] = {}
    for key in ("retention", "discard", "storage"):
        if key in config:
            out[key] = str(config[key]).lower()
    for key, target in _NUMBERS.items():
        if key in config:
            out[target] = str(config[key])
    for key, target in _DURATIONS.items():
        if key in config:
            out[target] = repr(go_duration_seconds(config[key]))
    return out


def validate_nats_jetstream_channel(obj: dict[str, Any]) -> list[FieldError]:
    errors = channelable.validate_channelable(obj)
    return errors + validate_stream(mapping(obj.get("spec")).get("stream"), "spec.stream")


def validate_nats_jetstream_channel_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    errors = channelable.validate_channelable_update(old, new)
    old_stream = mapping(mapping(old.get("spec")).get("stream"))
    new_stream = mapping(mapping(new.get("spec")).get("stream"))
    if old_stream.get("overrideName") != new_stream.get("overrideName"):
        errors.append(FieldError("spec.stream.overrideName", "immutable: the channel's stream keeps its name"))
    old_storage = mapping(old_stream.get("config")).get("storage")
    new_storage = mapping(new_stream.get("config")).get("storage")
    if old_storage != new_storage:
        errors.append(FieldError("spec.stream.config.storage", f"immutable: changed from {old_storage!r} to "
                                 f"{new_storage!r}; JetStream cannot change a stream's storage in place"))
    return errors

