"""What an MTChannelBasedBroker's channel template (`channel-template-spec`) asks for, as a topic.

Knative's `config-br-default-channel` ConfigMap names, in YAML under one key, the channel kind an
MTChannelBasedBroker sits on and that channel's spec. Nerve runs the Broker's topic on the backend of
that kind and shapes the topic from the spec the way the concrete channel would:

- InMemoryChannel (`messaging.knative.dev/v1`): memory; its spec holds nothing Nerve reads.
- KafkaChannel (`messaging.knative.dev/v1beta1`): Kafka, `numPartitions`, `replicationFactor`
  (default 1 each) and `retentionDuration` (ISO 8601, Kafka's `retention.ms`).
- NatsJetStreamChannel (`messaging.knative.dev/v1alpha1`): a JetStream stream; of `spec.stream.config`
  Nerve honours `maxAge` (a Go duration such as `1h30m`), `maxBytes`, `storage` (File|Memory) and
  `replicas`. Its other fields (retention, subjects, consumer templates) do not apply to Nerve's
  stream, which always keeps events by limits and is read by Nerve's own consumers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from control.api.broker import CHANNEL_BACKENDS, CHANNEL_TEMPLATE_KEY, DEFAULT_CHANNEL
from core.durations import parse_ms


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
    return ", ".join(f"{kind} ({api})" for api, kind in CHANNEL_BACKENDS)


def _positive(spec: dict[str, Any], key: str, where: str) -> int:
    value = spec.get(key, 1)
    # YAML may quote a number; a bool is an int to Python but never to Kubernetes.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TemplateError(f"{where}.{key}: must be a positive integer, got {value!r}")
    return value


_GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def go_duration_seconds(text: str) -> float:
    """Seconds in a Go duration string (`90s`, `1h30m`, `0`), as metav1.Duration writes them."""
    if text == "0":
        return 0.0
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration (e.g. 1h30m, 90s)")
    return sum(float(n) * _GO_UNIT_SECONDS[u] for n, u in parts)


def _kafka(spec: dict[str, Any]) -> tuple[int, int, dict[str, str]]:
    partitions = _positive(spec, "numPartitions", "spec")
    replication = _positive(spec, "replicationFactor", "spec")
    config: dict[str, str] = {}
    if spec.get("retentionDuration") is not None:
        try:
            config["retention.ms"] = str(parse_ms(spec["retentionDuration"]))
        except ValueError as exc:
            raise TemplateError(f"spec.retentionDuration: {exc}") from None
    return partitions, replication, config


def _nats(spec: dict[str, Any]) -> tuple[int, dict[str, str]]:
    stream = spec.get("stream") or {}
    conf = stream.get("config") if isinstance(stream, dict) else None
    if conf is None:
        return 1, {}
    if not isinstance(conf, dict):
        raise TemplateError("spec.stream.config: must be an object")
    config: dict[str, str] = {}
    if conf.get("maxAge") is not None:
        try:
            config["max.age.seconds"] = str(go_duration_seconds(str(conf["maxAge"])))
        except ValueError as exc:
            raise TemplateError(f"spec.stream.config.maxAge: {exc}") from None
    if conf.get("maxBytes") is not None:
        value = conf["maxBytes"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TemplateError(f"spec.stream.config.maxBytes: must be an integer, got {value!r}")
        config["max.bytes"] = str(value)
    if conf.get("storage") is not None:
        if conf["storage"] not in ("File", "Memory"):
            raise TemplateError(f"spec.stream.config.storage: must be File or Memory, got {conf['storage']!r}")
        config["storage"] = str(conf["storage"]).lower()
    replicas = _positive(conf, "replicas", "spec.stream.config") if conf.get("replicas") is not None else 1
    return replicas, config


def parse(data: dict[str, str]) -> ChannelTemplate:
    """The template in a ConfigMap's data; InMemoryChannel when the key is absent (Knative's default)."""
    text = data.get(CHANNEL_TEMPLATE_KEY)
    if text is None:
        return ChannelTemplate(*DEFAULT_CHANNEL, backend=CHANNEL_BACKENDS[DEFAULT_CHANNEL])
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise TemplateError("must be a YAML object with apiVersion and kind")
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    backend = CHANNEL_BACKENDS.get((str(api_version), str(kind)))
    if backend is None:
        raise TemplateError(f"channel kind {kind!r} of apiVersion {api_version!r} is not one Nerve runs; "
                            f"expected one of {_expected()}")
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise TemplateError("spec: must be an object")
    if backend == "kafka":
        partitions, replication, config = _kafka(spec)
        return ChannelTemplate(str(api_version), str(kind), backend, partitions, replication, config)
    if backend == "nats":
        replicas, config = _nats(spec)
        return ChannelTemplate(str(api_version), str(kind), backend, replication_factor=replicas, config=config)
    return ChannelTemplate(str(api_version), str(kind), backend)
