"""Transport encryption: CACerts checks, TLS contexts for senders and servers, and the CA `nerve up` makes.

- `pem_problem` is admission's check of a Destination's `CACerts` (Knative's: a PEM CERTIFICATE).
- `client_context(ca_pem)` is what the dispatcher and sources verify an https target with: the system
  trust store plus the target's `CACerts`, as Knative's `eventingtls` builds its pool (system pool, then
  the PEM appended). Contexts are cached by the PEM text, so every egress with the same CACerts shares one
  (an SSLContext holds its parsed trust store: building one per event would cost milliseconds).
- `server_context(cert, key)` is the ingress's https listener.
- `ensure_embedded_ca(dir, hosts)` makes, once, the CA and serving certificate `nerve up` uses when no
  `--tls-cert` is given: a CA (10 years) and a certificate for localhost, 127.0.0.1 and ::1 (and the
  listen host) signed by it (1 year, renewed when less than 30 days are left or the hosts changed). The
  CA's certificate is what Brokers and Channels publish in `status.address.CACerts`.
- `SchemeGuard` answers events on the listener the flags in force allow (http, https or both).
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.contract import Contract
from core.features import Features

NOT_A_PEM = "not a PEM certificate"
EMBEDDED_HOSTS = ("localhost", "127.0.0.1", "::1")


def pem_problem(value: Any) -> str | None:
    """Why `value` is not one or more PEM certificates, or None."""
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
        return NOT_A_PEM
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        return NOT_A_PEM
    return None


@functools.lru_cache(maxsize=512)
def client_context(ca_pem: str | None) -> ssl.SSLContext:
    """The context an https target is verified with: the system trust store, plus `ca_pem` when given."""
    context = ssl.create_default_context()
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    return context


def context_for(url: str, ca_pem: str | None) -> ssl.SSLContext | None:
    """The context for sending to `url`: None for plain http (nothing to verify) or an https URL without
    CACerts (the HTTP client's default, the system trust store)."""
    if not url.startswith("https://") or not ca_pem:
        return None
    return client_context(ca_pem)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


# ---------------------------------------------------------------------------------------- certificates


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its key, PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_ca(common_name: str, *, days: int = 3650) -> Issued:
    """A self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(ca: Issued, hosts: Sequence[str], *, days: int = 365) -> Issued:
    """A serving certificate for `hosts` (names or IP addresses) signed by `ca`."""
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = _now()
    issuer = ca.certificate
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True, slots=True)
class ServingFiles:
    """Where the ingress's certificate, its key and the CA that signed it are."""

    cert: Path
    key: Path
    ca: Path

    @property
    def ca_pem(self) -> str:
        return self.ca.read_text()


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _still_good(cert_path: Path, hosts: Sequence[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    have |= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    wanted = {str(ipaddress.ip_address(h)) if _is_ip(h) else h for h in hosts}
    return wanted <= have and cert.not_valid_after_utc - _now() > datetime.timedelta(days=30)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def ensure_embedded_ca(directory: Path, hosts: Sequence[str] = ()) -> ServingFiles:
    """The CA and serving certificate under `directory` (`<state dir>/tls`), made or renewed as needed:
    the CA is kept across restarts, so a client that trusts it once keeps trusting the ingress."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    files = ServingFiles(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    ca_key = directory / "ca.key"
    all_hosts = [*EMBEDDED_HOSTS, *(h for h in hosts if h and h not in ("0.0.0.0", "::") and h not in EMBEDDED_HOSTS)]
    fresh = not (files.ca.exists() and ca_key.exists())
    if fresh:
        ca = new_ca("Nerve embedded CA")
        _write(ca_key, ca.key_pem, secret=True)
        _write(files.ca, ca.cert_pem)
    else:
        ca = Issued(files.ca.read_bytes(), ca_key.read_bytes())
    if fresh or not (files.key.exists() and _still_good(files.cert, all_hosts)):
        serving = issue(ca, all_hosts)
        _write(files.key, serving.key_pem, secret=True)
        _write(files.cert, serving.cert_pem)
    return files


# ---------------------------------------------------------------------------------------- the listeners


_NOT_EVENTS = ("/healthz", "/readyz", "/metrics")


class SchemeGuard:
    """Which listener takes events under the flags in force, as Knative's eventingtls ServerManager decides:
    under `strict` the http listener answers 404 (a retryable answer while flags propagate), under
    `disabled` the https one does. Health and metrics answer on either, so probes keep working."""

    def __init__(self, features: Features | None = None) -> None:
        self.features = features or Features()

    async def follow(self, contract: Contract) -> None:
        self.features = contract.features

    def refusal(self, path: str, secure: bool) -> str | None:
        """The 404's text when an event comes to the listener that does not take events now, else None."""
        if path not in _NOT_EVENTS:
            if secure and not self.features.tls:
                return "transport-encryption is disabled: send over http\n"
            if not secure and not self.features.http_allowed:
                return "transport-encryption is strict: send over https\n"
        return None

    def check(self, request: web.BaseRequest) -> None:
        """Raises the 404 when an event comes to the listener that does not take events now (aiohttp)."""
        text = self.refusal(request.path, request.secure)
        if text is not None:
            raise web.HTTPNotFound(text=text)
