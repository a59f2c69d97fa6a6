"""Turning the Secrets that Knative configs name into backend connection security (core/backend_security.py).

Three shapes, each as Knative (or its NATS extension) spells it:

- a Kafka Broker's ConfigMap `auth.secret.ref.name`: a Secret in the ConfigMap's namespace with keys
  `protocol` (required: PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL), `sasl.mechanism` (PLAIN, the
  default, | SCRAM-SHA-256 | SCRAM-SHA-512), `user`, `password`, `ca.crt`, `user.crt`, `user.key`,
  `user.skip` (eventing-kafka-broker's control-plane/pkg/security);
- a KafkaSource's `spec.net.sasl` / `spec.net.tls`: `enable` and secretKeyRefs (`user`, `password`,
  `type` holding the mechanism; `caCert`, `cert`, `key`) in the source's namespace;
- a NatsJetStreamBroker's ConfigMap `auth.secret.ref.name`: a Secret with `user` and `password`, or
  `token`, or `nats.creds` (a credentials file, eventing-natss's key), and `ca.crt`, `tls.crt` /
  `tls.key` for TLS; TLS is on with a `tls://` URL or when any of those three is present.

Pure functions on the reconcile snapshot. A problem is SecretProblem with Knative's reason and a
message that names the field, the Secret and the key: the resource goes Ready=False with it, and no
client is ever made with half of its settings.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import yaml

from control.api.meta import mapping
from control.api.secret import decoded
from control.resolver import Lookup
from core.backend_security import KafkaProtocol, KafkaSecurity, NatsSecurity, SecurityError, check_tls, checked_kafka

AUTH_SECRET_KEY = "auth.secret.ref.name"
"""The ConfigMap key naming the auth Secret (Knative's Kafka Broker, Nerve's NATS Broker alike)."""
NATS_CREDENTIALS_KEY = "nats.creds"


class SecretProblem(Exception):
    """A Secret or a value in it that cannot be used; `reason` is the condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _values(lookup: Lookup, namespace: str, name: str, field: str, reason: str) -> dict[str, str]:
    secret = lookup.get("Secret", namespace, name)
    if secret is None:
        raise SecretProblem(reason, f"{field}: Secret {namespace}/{name} does not exist")
    return decoded(secret)


def kafka_auth_secret(lookup: Lookup, namespace: str, name: str, field: str = AUTH_SECRET_KEY) -> KafkaSecurity:
    """A Kafka Broker's auth Secret, resolved and checked."""
    reason = "FailedToGetBrokerAuthSecret"
    data = _values(lookup, namespace, name, field, reason)
    where = f"Secret {namespace}/{name}"
    protocol = data.get("protocol", "")
    if not protocol:
        raise SecretProblem(reason, f"{where}: key 'protocol' is required (PLAINTEXT, SSL, SASL_PLAINTEXT or "
                                    "SASL_SSL)")
    sasl = protocol in ("SASL_PLAINTEXT", "SASL_SSL")
    tls = protocol in ("SSL", "SASL_SSL")
    skip_client_cert = data.get("user.skip", "").lower() == "true"
    try:
        return checked_kafka(KafkaSecurity(
            protocol=protocol,  # type: ignore[arg-type]  # checked_kafka refuses any other value
            mechanism=(data.get("sasl.mechanism") or "PLAIN") if sasl else "",
            user=data.get("user", "") if sasl else "",
            password=data.get("password", "") if sasl else "",
            ca_pem=data.get("ca.crt", "") if tls else "",
            cert_pem="" if skip_client_cert or not tls else data.get("user.crt", ""),
            key_pem="" if skip_client_cert or not tls else data.get("user.key", ""),
        ))
    except SecurityError as exc:
        raise SecretProblem(reason, f"{where}: {exc}") from None


def _ref(value: Any) -> tuple[str, str] | None:
    ref = mapping(mapping(value).get("secretKeyRef"))
    name, key = ref.get("name"), ref.get("key")
    return (str(name), str(key)) if name and key else None


def _key(lookup: Lookup, namespace: str, ref: tuple[str, str], field: str) -> str:
    name, key = ref
    data = _values(lookup, namespace, name, field, "ClientCreationFailed")
    if key not in data:
        raise SecretProblem("ClientCreationFailed", f"{field}: Secret {namespace}/{name} has no key {key!r}")
    return data[key]


def kafka_source_net(lookup: Lookup, namespace: str, spec: dict[str, Any]) -> KafkaSecurity | None:
    """A KafkaSource's `spec.net` with its Secrets resolved; None when neither SASL nor TLS is enabled."""
    net = mapping(spec.get("net"))
    sasl, tls = mapping(net.get("sasl")), mapping(net.get("tls"))
    sasl_on, tls_on = sasl.get("enable") is True, tls.get("enable") is True
    if not sasl_on and not tls_on:
        return None

    def value(part: dict[str, Any], name: str, path: str) -> str:
        ref = _ref(part.get(name))
        return "" if ref is None else _key(lookup, namespace, ref, f"spec.net.{path}.{name}.secretKeyRef")

    protocol: KafkaProtocol = "SASL_SSL" if sasl_on and tls_on else "SASL_PLAINTEXT" if sasl_on else "SSL"
    security = KafkaSecurity(
        protocol=protocol,
        mechanism=(value(sasl, "type", "sasl") or "PLAIN") if sasl_on else "",
        user=value(sasl, "user", "sasl") if sasl_on else "",
        password=value(sasl, "password", "sasl") if sasl_on else "",
        ca_pem=value(tls, "caCert", "tls") if tls_on else "",
        cert_pem=value(tls, "cert", "tls") if tls_on else "",
        key_pem=value(tls, "key", "tls") if tls_on else "",
    )
    try:
        return checked_kafka(security)
    except SecurityError as exc:
        raise SecretProblem("ClientCreationFailed", f"spec.net: {_source_field(str(exc))}") from None


def _source_field(message: str) -> str:
    # checked_kafka names the Secret keys of a Broker's auth Secret; a KafkaSource's are its spec fields.
    for secret_key, spec_field in (("sasl.mechanism", "sasl.type"), ("user and password", "sasl.user and "
                                   "sasl.password"), ("ca.crt", "tls.caCert"), ("user.crt and user.key",
                                   "tls.cert and tls.key"), ("user.crt/user.key", "tls.cert/tls.key")):
        if message.startswith(secret_key):
            return spec_field + message[len(secret_key):]
    return message


def nats_auth_secret(lookup: Lookup, namespace: str, name: str, url: str,
                     field: str = AUTH_SECRET_KEY) -> NatsSecurity:
    """A NATS Broker's auth Secret, resolved and checked."""
    reason = "FailedToGetBrokerAuthSecret"
    data = _values(lookup, namespace, name, field, reason)
    where = f"Secret {namespace}/{name}"
    user, password = data.get("user", ""), data.get("password", "")
    if bool(user) != bool(password):
        raise SecretProblem(reason, f"{where}: keys 'user' and 'password' go together")
    ways = [w for w, given in (("user/password", user), ("token", data.get("token")),
                               (NATS_CREDENTIALS_KEY, data.get(NATS_CREDENTIALS_KEY))) if given]
    if len(ways) > 1:
        raise SecretProblem(reason, f"{where}: {' and '.join(ways)} both given; a NATS connection "
                                    "authenticates one way")
    ca, cert, key = data.get("ca.crt", ""), data.get("tls.crt", ""), data.get("tls.key", "")
    tls = url_wants_tls(url) or bool(ca or cert or key)
    if tls:
        try:
            check_tls(ca, cert, key)
        except SecurityError as exc:
            message = str(exc).replace("user.crt", "tls.crt").replace("user.key", "tls.key")
            raise SecretProblem(reason, f"{where}: {message}") from None
    return NatsSecurity(tls=tls, user=user, password=password, token=data.get("token", ""),
                        credentials=data.get(NATS_CREDENTIALS_KEY, ""), ca_pem=ca, cert_pem=cert, key_pem=key)


# ConfigMap keys that would configure client security if Nerve read them there: other Kafka tools take
# `security.protocol`, `sasl.*`, `ssl.*` as client properties, and a NATS user may try `user`/`token`.
_KAFKA_CONFIG_SECURITY = ("security.protocol", "sasl.", "ssl.", "tls.", "user", "password", "ca.crt", "user.crt",
                          "user.key")
_NATS_CONFIG_SECURITY = ("user", "password", "token", NATS_CREDENTIALS_KEY, "credentials", "ca.crt", "tls.")


def misplaced_security_keys(backend: str, data: dict[str, str]) -> list[str]:
    """ConfigMap keys that look like connection security: refused rather than ignored, since a Broker
    that silently connected without them would look configured and be in the clear."""
    prefixes = _KAFKA_CONFIG_SECURITY if backend == "kafka" else _NATS_CONFIG_SECURITY if backend == "nats" else ()
    return sorted(k for k in data if any(k == p or (p.endswith(".") and k.startswith(p)) for p in prefixes))


def misplaced_problem(backend: str, namespace: str, name: str, keys: list[str]) -> SecretProblem:
    return SecretProblem("FailedToResolveConfig", (
        f"ConfigMap {namespace}/{name} key {', '.join(repr(k) for k in keys)}: Nerve reads connection security "
        f"only from the Secret named by {AUTH_SECRET_KEY} (as Knative's {'Kafka' if backend == 'kafka' else 'NATS'}"
        " Broker does); move it there (keys: "
        + ("protocol, sasl.mechanism, user, password, ca.crt, user.crt, user.key)" if backend == "kafka"
           else "user, password, token, nats.creds, ca.crt, tls.crt, tls.key)")))


KAFKA_CHANNEL_CONFIG = ("knative-eventing", "kafka-channel-config")
"""Knative's KafkaChannel configuration: `bootstrap.servers` and `auth.secret.ref.name` (its Secret in
the same namespace), for every KafkaChannel and every channel-based Broker on one."""


def kafka_channel_cluster(lookup: Lookup, default_servers: str) \
        -> tuple[str, KafkaSecurity | None, SecretProblem | None]:
    """Where KafkaChannels live and how to connect: the kafka-channel-config ConfigMap when there is one,
    else the default cluster (--kafka-bootstrap) in the clear."""
    namespace, name = KAFKA_CHANNEL_CONFIG
    cm = lookup.get("ConfigMap", namespace, name)
    data = {str(k): str(v) for k, v in mapping((cm or {}).get("data")).items()}
    servers = data.get("bootstrap.servers") or default_servers
    misplaced = misplaced_security_keys("kafka", data)
    if misplaced:
        return servers, None, misplaced_problem("kafka", namespace, name, misplaced)
    secret = data.get(AUTH_SECRET_KEY, "")
    if not secret:
        return servers, None, None
    try:
        return servers, kafka_auth_secret(lookup, namespace, secret, f"ConfigMap {namespace}/{name} key "
                                          f"{AUTH_SECRET_KEY}"), None
    except SecretProblem as exc:
        return servers, None, exc


NATS_CHANNEL_CONFIG = ("knative-eventing", "config-nats")
"""eventing-natss's platform configuration: key `eventing-nats`, YAML with `url`, `tls` (`caBundle`:
base64 PEM, or `secret.name`: a Secret with `ca.crt`), `auth.credentialFile.secret` ({name, key}, key
default `nats.creds`) and `auth.tls.secret.name` (a Secret with `tls.crt`, `tls.key`)."""


def nats_channel_cluster(lookup: Lookup, default_url: str) -> tuple[str, NatsSecurity | None, SecretProblem | None]:
    """Where NatsJetStreamChannels live and how to connect: config-nats when there is one, else the
    default server (--nats-url). A user and password in the URL (eventing-natss's way) move into the
    security, so the URL recorded in status and logs carries none."""
    namespace, name = NATS_CHANNEL_CONFIG
    cm = lookup.get("ConfigMap", namespace, name)
    raw = mapping((cm or {}).get("data")).get("eventing-nats")
    where = f"ConfigMap {namespace}/{name} key eventing-nats"
    reason = "FailedToResolveConfig"
    if raw is None:
        return default_url, None, None
    try:
        config = yaml.safe_load(str(raw))
    except yaml.YAMLError as exc:
        return default_url, None, SecretProblem(reason, f"{where}: not YAML ({exc})")
    if not isinstance(config, dict):
        return default_url, None, SecretProblem(reason, f"{where}: must be a YAML mapping with url, tls, auth")
    url, user, password = without_userinfo(str(config.get("url") or default_url))
    try:
        ca, cert, key, credentials = _nats_material(lookup, namespace, mapping(config.get("tls")),
                                                    mapping(config.get("auth")), where)
        tls = url_wants_tls(url) or bool(ca or cert)
        if tls:
            check_tls(ca, cert, key)
    except SecurityError as exc:
        return url, None, SecretProblem(reason, f"{where}: {exc}")
    except SecretProblem as exc:
        return url, None, exc
    if not (tls or user or credentials):
        return url, None, None
    return url, NatsSecurity(tls=tls, user=user, password=password, credentials=credentials, ca_pem=ca,
                             cert_pem=cert, key_pem=key), None


def _nats_material(lookup: Lookup, namespace: str, tls: dict[str, Any], auth: dict[str, Any],
                   where: str) -> tuple[str, str, str, str]:
    ca = ""
    if tls.get("caBundle"):
        try:
            ca = base64.b64decode(str(tls["caBundle"]), validate=True).decode()
        except (binascii.Error, ValueError):
            raise SecurityError("tls.caBundle: not base64 of a PEM certificate") from None
    elif mapping(tls.get("secret")).get("name"):
        secret = str(mapping(tls.get("secret"))["name"])
        ca = _values(lookup, namespace, secret, f"{where} tls.secret", "FailedToResolveConfig").get("ca.crt", "")
        if not ca:
            raise SecurityError(f"tls.secret: Secret {namespace}/{secret} has no key 'ca.crt'")
    cert = key = ""
    client = mapping(mapping(auth.get("tls")).get("secret")).get("name")
    if client:
        values = _values(lookup, namespace, str(client), f"{where} auth.tls.secret", "FailedToResolveConfig")
        cert, key = values.get("tls.crt", ""), values.get("tls.key", "")
        if not cert or not key:
            raise SecurityError(f"auth.tls.secret: Secret {namespace}/{client} needs keys 'tls.crt' and 'tls.key'")
    credentials = ""
    creds = mapping(mapping(auth.get("credentialFile")).get("secret"))
    if creds.get("name"):
        secret, field = str(creds["name"]), str(creds.get("key") or NATS_CREDENTIALS_KEY)
        credentials = _values(lookup, namespace, secret, f"{where} auth.credentialFile.secret",
                              "FailedToResolveConfig").get(field, "")
        if not credentials:
            raise SecurityError(f"auth.credentialFile.secret: Secret {namespace}/{secret} has no key {field!r}")
    return ca, cert, key, credentials


def without_userinfo(urls: str) -> tuple[str, str, str]:
    """(the URLs without `user:password@`, the user, the password) of the first URL that has them."""
    user = password = ""
    clean: list[str] = []
    for url in (u.strip() for u in urls.split(",") if u.strip()):
        if "@" not in url:
            clean.append(url)  # left exactly as written
            continue
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        if parts.username and not user:
            user, password = unquote(parts.username), unquote(parts.password or "")
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{host}:{parts.port}" if parts.port else host
        clean.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
    return ",".join(clean), user, password


def url_wants_tls(url: str) -> bool:
    return any(part.strip().startswith("tls://") for part in url.split(","))
