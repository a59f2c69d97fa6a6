"""Channel (messaging.knative.dev/v1): the generic channel, backed by a concrete one of the kind its
`spec.channelTemplate` names.

The template is defaulted as Knative's webhook does, from ConfigMap `knative-eventing/default-ch-webhook`
key `default-ch-config` (YAML: `namespaceDefaults.<ns>`, else `clusterDefault`) when one is stored, else
from control's `--default-channel-kind`; it is immutable once stored
(`ev:pkg/apis/messaging/v1/channel_{defaults,validation}.go`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import yaml

from control.api import channelable, inmemorychannel, kafkachannel, natsjetstreamchannel, schema
from control.api.meta import mapping
from control.api.schema import LEAF, OPEN
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

API_VERSION = "messaging.knative.dev/v1"
DEFAULTS_NAMESPACE = "knative-eventing"
DEFAULTS_CONFIGMAP = "default-ch-webhook"
DEFAULTS_KEY = "default-ch-config"

# The concrete kinds a template may name, with the API version each is served at.
CHANNEL_KINDS: dict[str, str] = {
    "InMemoryChannel": inmemorychannel.API_VERSION,
    "KafkaChannel": kafkachannel.API_VERSION,
    "NatsJetStreamChannel": natsjetstreamchannel.API_VERSION,
}
BACKEND_OF_KIND = {"InMemoryChannel": "memory", "KafkaChannel": "kafka", "NatsJetStreamChannel": "nats"}
KIND_FOR_BACKEND = {backend: kind for kind, backend in BACKEND_OF_KIND.items()}

SCHEMA = schema.resource(schema.obj({
    **channelable.SPEC_FIELDS,
    "channelTemplate": schema.obj({"apiVersion": LEAF, "kind": LEAF, "spec": OPEN}),
}))
COLUMNS = channelable.COLUMNS


def default_template(namespace: str, settings: AdmissionSettings) -> dict[str, Any]:
    """The channelTemplate a channel in `namespace` gets when it names none (a Channel's, a Sequence
    step's): the stored default-ch-webhook ConfigMap's, else the setting's.

    A ConfigMap whose YAML cannot be read is no default: the setting's applies (the ConfigMap's own
    admission cannot tell, it is just a ConfigMap).
    """
    try:
        config = yaml.safe_load(settings.channel_defaults) if settings.channel_defaults else None
    except yaml.YAMLError:
        config = None
    config = mapping(config)
    chosen = mapping(mapping(config.get("namespaceDefaults")).get(namespace)) or mapping(config.get("clusterDefault"))
    if chosen.get("kind"):
        template = {"apiVersion": chosen.get("apiVersion", ""), "kind": chosen["kind"]}
        if chosen.get("spec") is not None:
            template["spec"] = chosen["spec"]
        return template
    kind = settings.default_channel_kind
    return {"apiVersion": CHANNEL_KINDS[kind], "kind": kind}


def default_channel(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    channelable.default_channelable(obj)
    spec = obj.get("spec")
    if isinstance(spec, dict) and spec.get("channelTemplate") is None:
        spec["channelTemplate"] = default_template(obj["metadata"]["namespace"], settings)


def validate_template(template: Any, path: str) -> list[FieldError]:
    """A channelTemplate: a concrete channel kind Nerve runs, and a spec that kind accepts."""
    if not isinstance(template, dict):
        return [FieldError(path, "required: an object with apiVersion and kind")]
    errors = [FieldError(f"{path}.{key}", "required") for key in ("apiVersion", "kind")
              if not isinstance(template.get(key), str) or not template.get(key)]
    if errors:
        return errors
    kind, api_version = template["kind"], template["apiVersion"]
    if kind not in CHANNEL_KINDS:
        known = ", ".join(f"{k} ({v})" for k, v in CHANNEL_KINDS.items())
        return [FieldError(f"{path}.kind", f"{kind!r} is not a channel kind Nerve runs; use one of {known}")]
    if api_version != CHANNEL_KINDS[kind]:
        served = CHANNEL_KINDS[kind]
        return [FieldError(f"{path}.apiVersion", f"{api_version!r} is not served for {kind}; use {served}")]
    spec = template.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, dict):
        return [FieldError(f"{path}.spec", "must be an object")]
    if spec.get("subscribers"):
        errors.append(FieldError(f"{path}.spec.subscribers", "is written by Nerve from the Subscriptions"))
    if kind == "KafkaChannel":
        errors += kafkachannel.validate_topic_fields(spec, f"{path}.spec")
    elif kind == "NatsJetStreamChannel":
        errors += natsjetstreamchannel.validate_stream(spec.get("stream"), f"{path}.spec.stream")
    return errors


def validate_channel(obj: dict[str, Any]) -> list[FieldError]:
    errors = channelable.validate_channelable(obj)
    return errors + validate_template(mapping(obj.get("spec")).get("channelTemplate"), "spec.channelTemplate")


def validate_channel_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    errors = channelable.validate_channelable_update(old, new)
    before, after = mapping(old.get("spec")).get("channelTemplate"), mapping(new.get("spec")).get("channelTemplate")
    if before != after:
        errors.append(FieldError("spec.channelTemplate", "immutable: delete and re-create the Channel to change "
                                 "the kind of channel behind it"))
    return errors


def is_defaults_configmap(obj: dict[str, Any] | None) -> bool:
    meta = mapping((obj or {}).get("metadata"))
    return (obj or {}).get("kind") == "ConfigMap" and meta.get("namespace") == DEFAULTS_NAMESPACE and \
        meta.get("name") == DEFAULTS_CONFIGMAP


def with_defaults_from(settings: AdmissionSettings, configmap: dict[str, Any] | None) -> AdmissionSettings:
    """`settings` seeing the channel defaults of `configmap` when it is the default-ch-webhook one (stored,
    or earlier in the same request, as `kubectl apply -f dir/` would have stored it first)."""
    if not is_defaults_configmap(configmap):
        return settings
    value = mapping(mapping(configmap).get("data")).get(DEFAULTS_KEY, "")
    return dataclasses.replace(settings, channel_defaults=value if isinstance(value, str) else "")
