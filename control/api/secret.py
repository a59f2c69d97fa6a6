"""The Kubernetes v1 Secret, stored for the credentials Knative's Kafka and NATS configs name.

What Nerve reads from it: `data` (base64, as Kubernetes stores it) through control/secrets.py, for a
Kafka Broker's `auth.secret.ref.name`, a KafkaSource's `spec.net` secretKeyRefs and a NATS Broker's
auth Secret. As the API server does, `stringData` is merged into `data` (base64-encoded) on admission
and not stored, so there is one place a value lives. Every value is answered as `<redacted>` by
`nerve get secret -o yaml` unless `--show-secrets` (control/redaction.py).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from control.api import columns, schema
from control.api.meta import mapping
from control.api.schema import LEAF, map_of
from core.errors import FieldError

SCHEMA = schema.resource(None, data=map_of(), stringData=map_of(), type=LEAF, immutable=LEAF)
COLUMNS = (columns.NAME, columns.Column("TYPE", lambda o: str(o.get("type") or "Opaque")),
           columns.Column("DATA", lambda o: str(len(mapping(o.get("data"))))), columns.AGE)


def default_secret(obj: dict[str, Any], _settings: object) -> None:
    """`stringData` into `data` (its values win, as in Kubernetes); `type` Opaque when not given."""
    strings = obj.pop("stringData", None)
    if isinstance(strings, dict) and all(isinstance(v, str) for v in strings.values()):
        data = obj.get("data")
        data = dict(data) if isinstance(data, dict) else {}
        data.update({k: base64.b64encode(v.encode()).decode() for k, v in strings.items()})
        obj["data"] = data
    elif strings is not None:
        obj["stringData"] = strings  # left for validation to name
    obj.setdefault("type", "Opaque")


def validate_secret(obj: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    if "stringData" in obj:
        errors.append(FieldError("stringData", "must be a map of strings to strings"))
    data = obj.get("data")
    if data is None:
        return errors
    if not isinstance(data, dict):
        return [*errors, FieldError("data", "must be a map of keys to base64-encoded values")]
    for key, value in data.items():
        if not isinstance(value, str):
            errors.append(FieldError(f"data.{key}", "must be a base64-encoded string"))
            continue
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            errors.append(FieldError(f"data.{key}", "is not valid base64 (use stringData for plain text)"))
    if not isinstance(obj.get("type", ""), str):
        errors.append(FieldError("type", "must be a string"))
    return errors


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    """The Secret's values as text (admission checked the base64; a value that is not UTF-8 is skipped)."""
    out: dict[str, str] = {}
    for key, value in mapping(secret.get("data")).items():
        try:
            out[str(key)] = base64.b64decode(str(value)).decode()
        except (binascii.Error, ValueError):
            continue
    return out
