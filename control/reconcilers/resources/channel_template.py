"""What an MTChannelBasedBroker's channel template (`channel-template-spec`) asks for, as a topic.

Knative's `config-br-default-channel` ConfigMap names, in YAML under one key, the channel kind an
MTChannelBasedBroker sits on and that channel's spec. Nerve runs the Broker's topic on the backend of
that kind and shapes it from the spec with the concrete kind's own rules (control/api/kafkachannel.py,
natsjetstreamchannel.py), so a template means what the same spec means on a KafkaChannel or
NatsJetStreamChannel:

- InMemoryChannel (`messaging.knative.dev/v1`): memory.
- KafkaChannel (`messaging.knative.dev/v1beta1`): `numPartitions`, `replicationFactor` (default 1 each),
  `retentionDuration` (ISO 8601, default PT168H, the topic's `retention.ms`).
- NatsJetStreamChannel (`messaging.knative.dev/v1alpha1`): `spec.stream.config` (maxAge, maxBytes,
  storage, replicas, ...) shapes the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from control.api import channel, kafkachannel, natsjetstreamchannel
from control.api.broker import CHANNEL_TEMPLATE_KEY
from core.durations import parse_ms

# What the Broker sits on when its ConfigMap names no template (Knative's shipped config-br-default-channel).
DEFAULT_KIND = "InMemoryChannel"


class TemplateError(ValueError):
    """The template cannot be run; the message names the field and why (the caller adds the key)."""


@dataclass(frozen=True, slots=True)
class ChannelTemplate:
    api_version: str
    kind: str
    backend: str
    partitions: int = 1
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)
    """Backend knobs as channels/ reads them: Kafka topic configs, or the NATS stream keys."""


def _expected() -> str:
    return ", ".join(f"{kind} ({api})" for kind, api in channel.CHANNEL_KINDS.items())


def _kafka(spec: dict[str, Any]) -> ChannelTemplate:
    errors = kafkachannel.validate_topic_fields(spec, "spec")
    if errors:
        raise TemplateError("; ".join(map(str, errors)))
    retention = parse_ms(spec.get("retentionDuration", kafkachannel.DEFAULT_RETENTION))
    return ChannelTemplate(kafkachannel.API_VERSION, "KafkaChannel", "kafka", int(spec.get("numPartitions", 1)),
                           int(spec.get("replicationFactor", 1)), {"retention.ms": str(retention)})


def _nats(spec: dict[str, Any]) -> ChannelTemplate:
    errors = natsjetstreamchannel.validate_stream(spec.get("stream"), "spec.stream")
    if errors:
        raise TemplateError("; ".join(map(str, errors)))
    config = natsjetstreamchannel.stream_config(spec)
    replicas = int(config.get("replicas", "1") or 1)
    return ChannelTemplate(natsjetstreamchannel.API_VERSION, "NatsJetStreamChannel", "nats",
                           replication_factor=replicas, config=config)


def parse(data: dict[str, str]) -> ChannelTemplate:
    """The template in a ConfigMap's data; InMemoryChannel when the key is absent (Knative's default)."""
    text = data.get(CHANNEL_TEMPLATE_KEY)
    if text is None:
        return ChannelTemplate(channel.CHANNEL_KINDS[DEFAULT_KIND], DEFAULT_KIND, channel.BACKEND_OF_KIND[DEFAULT_KIND])
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise TemplateError("must be a YAML object with apiVersion and kind")
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(kind, str) or channel.CHANNEL_KINDS.get(kind) != api_version:
        raise TemplateError(f"channel kind {kind!r} of apiVersion {api_version!r} is not one Nerve runs; "
                            f"expected one of {_expected()}")
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise TemplateError("spec: must be an object")
    if kind == "KafkaChannel":
        return _kafka(spec)
    if kind == "NatsJetStreamChannel":
        return _nats(spec)
    return ChannelTemplate(channel.CHANNEL_KINDS[kind], kind, channel.BACKEND_OF_KIND[kind])
