"""Secret values in Secrets and ConfigMaps, hidden from what the control API returns unless asked for.

Every value of a v1 Secret is redacted. Credentials also end up in ConfigMaps (Knative's Kafka broker
config, `sasl.password`, `user.key`, ... written into ConfigMap data), so a `nerve get configmap -o
yaml` would print them to a terminal, a CI log or a support ticket: a ConfigMap data key whose last
word names a credential is answered as REDACTED too. `?showSecrets=true` (with the token, as every
/api/ request) returns the stored values. Only the output changes: the store and what backends are
configured with keep the real values.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
_WORDS = re.compile(r"[._\-/]+")
_SECRET_WORDS = frozenset({"password", "passwd", "pwd", "secret", "token", "key", "credentials", "credential",
                           "apikey", "passphrase"})
# camelCase and run-together spellings: saslPassword, accessToken, clientSecret, privatekey.
_SECRET_ENDINGS = ("password", "passwd", "secret", "token", "apikey", "privatekey", "passphrase")


def is_secret_key(key: str) -> bool:
    """`sasl.password`, `password`, `token`, `tls.key`, `user.key`, `saslPassword`: yes;
    `sasl.mechanism`, `auth.secret.ref.name`, `ca.crt`, `bootstrap.servers`: no."""
    words = [w for w in _WORDS.split(key.lower()) if w]
    if not words:
        return False
    last = words[-1]
    return last in _SECRET_WORDS or last.endswith(_SECRET_ENDINGS)


def redact(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with its secret-looking ConfigMap data values replaced, and every value of a Secret; other
    kinds are returned as they are."""
    if obj.get("kind") == "Secret":
        out = dict(obj)
        for field in ("data", "stringData"):
            values = obj.get(field)
            if isinstance(values, dict):
                out[field] = dict.fromkeys(values, REDACTED)
        return out
    if obj.get("kind") != "ConfigMap":
        return obj
    out = dict(obj)
    for field in ("data", "binaryData"):
        values = obj.get(field)
        if isinstance(values, dict):
            out[field] = {k: REDACTED if is_secret_key(str(k)) else v for k, v in values.items()}
    return out
