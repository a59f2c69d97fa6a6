"""KafkaSource (sources.knative.dev/v1 and v1beta1): Kafka topics -> a sink, with Trigger-like delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import columns, schema, source
from control.api.delivery import INT32_MAX, default_delivery, validate_delivery
from control.api.meta import mapping
from control.api.schema import LEAF, OPEN, FieldNotice, list_of
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

KEY_TYPE_LABEL = "kafkasources.sources.knative.dev/key-type"

# `ekb:control-plane/pkg/apis/sources/v1/kafka_types.go`; a secret is {secretKeyRef: {name, key}}.
_SECRET = OPEN
_NET = schema.obj({
    "sasl": schema.obj({"enable": LEAF, "user": _SECRET, "password": _SECRET, "type": _SECRET,
                        "tokenProvider": _SECRET, "roleARN": _SECRET}),
    "tls": schema.obj({"enable": LEAF, "cert": _SECRET, "key": _SECRET, "caCert": _SECRET}),
})
SCHEMA = schema.resource(schema.obj({
    **source.DUCK,
    # KafkaSource's own
    "bootstrapServers": list_of(LEAF),
    "topics": list_of(LEAF),
    "net": _NET,
    "consumerGroup": LEAF,
    "consumers": LEAF,
    "initialOffset": LEAF,
    "ordering": LEAF,
    "delivery": schema.delivery(format_implemented=False),
}))
# Knative's printer columns for KafkaSource.
COLUMNS = (columns.NAME, columns.field("TOPICS", "spec", "topics"),
           columns.field("BOOTSTRAPSERVERS", "spec", "bootstrapServers"), columns.READY, columns.REASON, columns.AGE)


def default_kafka_source(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("consumerGroup", f"knative-kafka-source-{meta['namespace']}-{meta.get('name')}")
    spec.setdefault("consumers", 1)
    spec.setdefault("initialOffset", "latest")
    spec.setdefault("ordering", "ordered")
    source.default_duck(spec, meta["namespace"])
    default_delivery(spec.get("delivery"), meta["namespace"])


def _strings(value: Any, path: str) -> list[FieldError]:
    if not isinstance(value, list) or not value:
        return [FieldError(path, "required: a non-empty list")]
    return [FieldError(f"{path}[{i}]", "must be a non-empty string") for i, v in enumerate(value)
            if not isinstance(v, str) or not v]


def validate_kafka_source(obj: dict[str, Any]) -> list[FieldError]:
    namespace, spec = obj["metadata"]["namespace"], obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    errors = _strings(spec.get("bootstrapServers"), "spec.bootstrapServers")
    errors += _strings(spec.get("topics"), "spec.topics")
    errors += source.validate_duck(spec, namespace)
    if spec.get("initialOffset") not in ("earliest", "latest"):
        errors.append(FieldError("spec.initialOffset", f"{spec.get('initialOffset')!r} must be earliest or latest"))
    if spec.get("ordering") not in ("ordered", "unordered"):
        errors.append(FieldError("spec.ordering", f"{spec.get('ordering')!r} must be ordered or unordered"))
    consumers = spec.get("consumers")
    if not isinstance(consumers, int) or isinstance(consumers, bool) or consumers < 1:
        errors.append(FieldError("spec.consumers", f"{consumers!r} must be an integer >= 1"))
    elif consumers > INT32_MAX:
        errors.append(FieldError("spec.consumers", f"{consumers!r} must be at most {INT32_MAX}"))
    if not isinstance(spec.get("consumerGroup"), str) or not spec["consumerGroup"]:
        errors.append(FieldError("spec.consumerGroup", "must be a non-empty string"))
    errors += validate_delivery(spec.get("delivery"), "spec.delivery", namespace)
    errors += validate_net(spec.get("net"))
    return errors


# spec.net's secretKeyRef fields Nerve reads (control/secrets.py); AWS MSK IAM's are refused by name.
_NET_FIELDS = {"sasl": ("user", "password", "type"), "tls": ("cert", "key", "caCert")}
_NET_UNSUPPORTED = {"tokenProvider": "OAUTHBEARER token providers", "roleARN": "AWS MSK IAM roles"}


def validate_net(net: Any) -> list[FieldError]:
    """The shape of `spec.net`: what the Secrets hold is checked when they are read (Ready=False then)."""
    if net is None:
        return []
    if not isinstance(net, dict):
        return [FieldError("spec.net", "must be an object with sasl and tls")]
    errors: list[FieldError] = []
    for part, names in _NET_FIELDS.items():
        value = net.get(part)
        if value is None:
            continue
        path = f"spec.net.{part}"
        if not isinstance(value, dict):
            errors.append(FieldError(path, "must be an object"))
            continue
        enable = value.get("enable")
        if enable is not None and not isinstance(enable, bool):
            errors.append(FieldError(f"{path}.enable", f"{enable!r} must be true or false"))
        for name in (*names, *(_NET_UNSUPPORTED if part == "sasl" else ())):
            ref = value.get(name)
            if ref is None:
                continue
            if name in _NET_UNSUPPORTED:
                if enable is True and _secret_ref(ref) is not None:
                    errors.append(FieldError(f"{path}.{name}", f"{_NET_UNSUPPORTED[name]} are not supported; "
                                             "Nerve's Kafka client speaks SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512"))
                continue
            if _secret_ref(ref) is None and ref != {}:
                errors.append(FieldError(f"{path}.{name}", "must be {secretKeyRef: {name, key}} naming a Secret's key"))
        if enable is True and part == "sasl":
            for name in ("user", "password"):
                if _secret_ref(value.get(name)) is None:
                    errors.append(FieldError(f"{path}.{name}", "required when SASL is enabled: "
                                             "{secretKeyRef: {name, key}}"))
    return errors


def _secret_ref(value: Any) -> tuple[str, str] | None:
    ref = mapping(value).get("secretKeyRef") if isinstance(value, dict) else None
    if not isinstance(ref, dict):
        return None
    name, key = ref.get("name"), ref.get("key")
    return (name, key) if isinstance(name, str) and name and isinstance(key, str) and key else None


def notices_kafka_source(obj: dict[str, Any]) -> list[FieldNotice]:
    """Values Knative's KafkaSource acts on and Nerve does not: said at apply time, never ignored silently."""
    spec = mapping(obj.get("spec"))
    notices: list[FieldNotice] = []
    consumers = spec.get("consumers")
    if isinstance(consumers, int) and not isinstance(consumers, bool) and consumers > 1:
        notices.append(schema.not_implemented(
            "spec.consumers", f"{consumers} consumers asked for; Nerve runs one consumer per topic"))
    key_type = mapping(obj["metadata"].get("labels")).get(KEY_TYPE_LABEL)
    if key_type is not None and key_type != "string":
        notices.append(schema.not_implemented(
            f"metadata.labels.{KEY_TYPE_LABEL}", f"{key_type!r}: record keys are always read as strings"))
    return notices
