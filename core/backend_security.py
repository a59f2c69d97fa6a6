"""How a backend client proves who it is and checks whom it talks to: Kafka and NATS connection security.

Control resolves the Secrets a Broker's ConfigMap or a KafkaSource's `spec.net` names into one of these
values and writes it into the contract beside the cluster address, so the ingress, the dispatcher,
control's own admin client and the sources all connect with the same credentials. The data plane
never reads a Secret itself. Values are strings (PEM text, not file paths): the contract is one file,
and the same contract works on every machine that reads it.

`repr()` leaves out passwords, tokens, credentials and keys, so a logged contract entry shows none.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, fields
from typing import Any, Literal

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KAFKA_PROTOCOLS: tuple[KafkaProtocol, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""What aiokafka speaks and Nerve accepts; OAUTHBEARER and AWS MSK IAM are refused by name."""


class SecurityError(ValueError):
    """A security setting that cannot be used; the message names the field and the reason."""


def _secret(default: str = "") -> Any:
    return field(default=default, repr=False)


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """Knative's Kafka auth Secret (`protocol`, `sasl.mechanism`, `user`, `password`, `ca.crt`, `user.crt`,
    `user.key`), resolved. PLAINTEXT with nothing else is the same as no security."""

    protocol: KafkaProtocol = "PLAINTEXT"
    mechanism: str = ""
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 for the SASL protocols; "" otherwise."""
    user: str = ""
    password: str = _secret()
    ca_pem: str = ""
    """Trust for the brokers' certificates; "" trusts the system store."""
    cert_pem: str = ""
    """A client certificate (mutual TLS), with `key_pem`."""
    key_pem: str = _secret()

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def to_json(self) -> dict[str, str]:
        return {_JSON[f.name]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> KafkaSecurity:
        # Not checked again here: control checked it before writing, and a reader must load every contract.
        values: dict[str, Any] = {name: str(obj.get(key, "")) for name, key in _JSON.items()
                                  if obj.get(key) and name in _KAFKA_FIELDS}
        return cls(**values)


@dataclass(frozen=True, slots=True)
class NatsSecurity:
    """A NATS connection's TLS and credentials: user/password, a token, or a credentials file (JWT and
    NKey seed, eventing-natss's `nats.creds`)."""

    tls: bool = False
    user: str = ""
    password: str = _secret()
    token: str = _secret()
    credentials: str = _secret()
    """The text of a `.creds` file."""
    ca_pem: str = ""
    cert_pem: str = ""
    key_pem: str = _secret()

    def to_json(self) -> dict[str, Any]:
        return {_JSON[f.name]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> NatsSecurity:
        values: dict[str, Any] = {name: str(obj.get(key, "")) for name, key in _JSON.items()
                                  if obj.get(key) and name in _NATS_FIELDS}
        values["tls"] = bool(obj.get("tls"))
        return cls(**values)


BackendSecurity = KafkaSecurity | NatsSecurity

_JSON = {"protocol": "protocol", "mechanism": "saslMechanism", "user": "user", "password": "password",
         "token": "token", "credentials": "credentials", "tls": "tls", "ca_pem": "caCert", "cert_pem": "cert",
         "key_pem": "key"}
_NATS_FIELDS = frozenset(f.name for f in fields(NatsSecurity))
_KAFKA_FIELDS = frozenset(f.name for f in fields(KafkaSecurity))


def security_from_json(backend: str, obj: dict[str, Any] | None) -> BackendSecurity | None:
    if not obj:
        return None
    return KafkaSecurity.from_json(obj) if backend == "kafka" else NatsSecurity.from_json(obj)


def checked_kafka(security: KafkaSecurity) -> KafkaSecurity:
    """`security` when it can be used as it is; else SecurityError naming the setting."""
    if security.protocol not in KAFKA_PROTOCOLS:
        raise SecurityError(f"protocol: {security.protocol!r} is not one of {', '.join(KAFKA_PROTOCOLS)}")
    if security.sasl:
        if security.mechanism not in SASL_MECHANISMS:
            raise SecurityError(f"sasl.mechanism: {security.mechanism or 'empty'!r} is not one of "
                                f"{', '.join(SASL_MECHANISMS)} (what Nerve's Kafka client speaks)")
        if not security.user or not security.password:
            raise SecurityError(f"user and password: SASL {security.mechanism} needs both")
    elif security.mechanism or security.user:
        raise SecurityError(f"sasl.mechanism/user: given, but protocol {security.protocol} has no SASL "
                            "(use SASL_SSL or SASL_PLAINTEXT)")
    if security.tls:
        check_tls(security.ca_pem, security.cert_pem, security.key_pem)
    elif security.ca_pem or security.cert_pem:
        raise SecurityError(f"ca.crt/user.crt: given, but protocol {security.protocol} has no TLS "
                            "(use SSL or SASL_SSL)")
    return security


def check_tls(ca_pem: str, cert_pem: str, key_pem: str) -> None:
    """Whether a TLS client can be made from these: a CA that parses (or a system store that has one),
    and a client certificate only with its key."""
    if bool(cert_pem) != bool(key_pem):
        raise SecurityError("user.crt and user.key: a client certificate needs its key, and the key its certificate")
    ssl_context(ca_pem, cert_pem, key_pem)


def ssl_context(ca_pem: str, cert_pem: str = "", key_pem: str = "") -> ssl.SSLContext:
    """A verifying client context: trusting `ca_pem`, or the system store when it is ""."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_pem:
        try:
            context.load_verify_locations(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise SecurityError(f"ca.crt: not a PEM certificate ({exc})") from None
    elif not context.cert_store_stats().get("x509_ca") and not _system_ca_directory():
        raise SecurityError("ca.crt: TLS is on and no CA was given, and this machine's system trust store is "
                            "empty, so no broker certificate could be verified; add ca.crt to the Secret")
    if cert_pem:
        _load_client_cert(context, cert_pem, key_pem)
    return context


def _system_ca_directory() -> bool:
    """Whether OpenSSL has a CA directory to look in: its certificates load only when a handshake asks,
    so the store's count says 0 while trust works (SSL_CERT_DIR, a capath without a bundle file)."""
    import os

    paths = ssl.get_default_verify_paths()
    return bool(paths.capath) and any(os.scandir(paths.capath))  # None when the directory does not exist


def _load_client_cert(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    # The ssl module loads a certificate chain only from files: one private temporary file, gone at once.
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix="nerve-client-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(key_pem.strip() + "\n" + cert_pem.strip() + "\n")
        context.load_cert_chain(path)
    except (ssl.SSLError, ValueError) as exc:
        raise SecurityError(f"user.crt/user.key: not a PEM certificate and its private key ({exc})") from None
    finally:
        os.unlink(path)
