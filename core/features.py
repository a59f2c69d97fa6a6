"""Knative's feature flags that change what Nerve does on the wire: `transport-encryption`,
`authentication-oidc` and `default-authorization-mode`.

Knative reads them from the ConfigMap `config-features` in `knative-eventing` (`ev:pkg/apis/feature/
features.go`); so does Nerve, and `nerve up` / `python -m control` flags override the ConfigMap key by
key (`--transport-encryption strict` wins over what the ConfigMap says; an empty flag leaves it to the
ConfigMap, then to Knative's default). Control resolves the two into one `Features` and writes it into
the contract, so ingress, dispatcher and sources act on the same flags control built the statuses with.

Values are matched without regard to case, as Knative's are (`Strict` is `strict`), and keys starting
with `_` are ignored (Knative's `_example` block). Where Knative only logs a warning for a value it does
not know (and then behaves as if the flag were off), Nerve refuses the ConfigMap at apply, naming the key
and the allowed values: a typo in `transport-encryption` should not silently leave events in clear.
Other keys of `config-features` (`delivery-timeout`, `kreference-group`, ...) are kept as written and
not read here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import FieldError

FEATURES_NAMESPACE = "knative-eventing"
FEATURES_CONFIGMAP = "config-features"

TransportEncryption = Literal["disabled", "permissive", "strict"]
AuthenticationOIDC = Literal["disabled", "enabled"]
AuthorizationMode = Literal["allow-same-namespace", "allow-all", "deny-all"]

TRANSPORT_ENCRYPTION = "transport-encryption"
AUTHENTICATION_OIDC = "authentication-oidc"
DEFAULT_AUTHORIZATION_MODE = "default-authorization-mode"

ALLOWED: dict[str, tuple[str, ...]] = {
    TRANSPORT_ENCRYPTION: ("disabled", "permissive", "strict"),
    AUTHENTICATION_OIDC: ("disabled", "enabled"),
    DEFAULT_AUTHORIZATION_MODE: ("allow-same-namespace", "allow-all", "deny-all"),
}
"""Each flag Nerve reads and the values it takes, Knative's default first."""

_FIELD = {TRANSPORT_ENCRYPTION: "transport_encryption", AUTHENTICATION_OIDC: "authentication_oidc",
          DEFAULT_AUTHORIZATION_MODE: "default_authorization_mode"}


@dataclass(frozen=True, slots=True)
class Features:
    """The flags in force, Knative's defaults unless the ConfigMap or a flag says otherwise."""

    transport_encryption: TransportEncryption = "disabled"
    authentication_oidc: AuthenticationOIDC = "disabled"
    default_authorization_mode: AuthorizationMode = "allow-same-namespace"

    @property
    def tls(self) -> bool:
        """Addresses are (also) https: permissive or strict."""
        return self.transport_encryption != "disabled"

    @property
    def http_allowed(self) -> bool:
        """Plain http is still accepted and advertised (disabled or permissive)."""
        return self.transport_encryption != "strict"

    @property
    def oidc(self) -> bool:
        return self.authentication_oidc == "enabled"

    def to_json(self) -> dict[str, str]:
        """Knative's keys and values, as the ConfigMap spells them."""
        return {key: getattr(self, name) for key, name in _FIELD.items()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Features:
        """Read leniently (a contract written by an older or newer control): a value this Nerve does not
        know keeps the default."""
        values: dict[str, Any] = {}
        for key, name in _FIELD.items():
            value = normalise((obj or {}).get(key))
            if value in ALLOWED[key]:
                values[name] = value
        return cls(**values)

    def overridden(self, overrides: Mapping[str, str]) -> Features:
        """These flags with every non-empty override (Knative key -> value, already checked) in force."""
        return Features.from_json({**self.to_json(), **{k: v for k, v in overrides.items() if v}})


def normalise(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


def value_problem(key: str, value: Any) -> str | None:
    """Why `value` is not one `key` takes, or None (a key Nerve does not read takes anything)."""
    allowed = ALLOWED.get(key)
    if allowed is None or normalise(value) in allowed:
        return None
    return f"{value!r} is not a value of {key}: expected one of {', '.join(allowed)}"


def problems(data: Mapping[str, Any] | None, path: str = "data") -> list[FieldError]:
    """Every refused value of a `config-features` ConfigMap's data, each naming `data.<key>`."""
    found = []
    for key, value in (data or {}).items():
        if not isinstance(key, str) or key.startswith("_"):
            continue
        why = value_problem(key.strip(), value)
        if why is not None:
            found.append(FieldError(f"{path}.{key}", why))
    return found


def from_data(data: Mapping[str, Any] | None) -> Features:
    """The flags a `config-features` ConfigMap's data sets (None: no such ConfigMap). A value admission
    would have refused (a ConfigMap stored some other way) keeps Knative's default."""
    cleaned = {key.strip(): value for key, value in (data or {}).items()
               if isinstance(key, str) and not key.startswith("_")}
    return Features.from_json(cleaned)


def is_features_configmap(obj: Mapping[str, Any] | None) -> bool:
    meta = (obj or {}).get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return (obj or {}).get("kind") == "ConfigMap" and meta.get("namespace") == FEATURES_NAMESPACE \
        and meta.get("name") == FEATURES_CONFIGMAP


def flag_check(key: str) -> Callable[[Any], str | None]:
    """A settings check (core/settings.py) for the flag overriding `key`: empty (the ConfigMap's), or one of
    the key's values."""

    def check(value: Any) -> str | None:
        if value == "":
            return None
        allowed = ALLOWED[key]
        return None if normalise(value) in allowed else f"expected one of {', '.join(allowed)} (or empty)"

    return check


def resolve(configmap_data: Mapping[str, Any] | None, overrides: Mapping[str, str]) -> Features:
    """The flags in force: the ConfigMap's (or Knative's defaults), then each non-empty override."""
    return from_data(configmap_data).overridden({k: normalise(v) for k, v in overrides.items()})
