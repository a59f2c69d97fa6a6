"""A throw-away certificate authority and a server certificate for the local Kafka and nats-server.

The launchers' secure listeners (scripts/kafka_local.py `secure=True`, scripts/nats_local.py `tls=True`)
need a CA that clients are given (`ca.crt`, as a Knative Secret holds it) and a certificate for
127.0.0.1 / localhost signed by it. Made with the `cryptography` library (a dev dependency), imported
here only, so the plain launchers stay standard library only. EC P-256 keys: generated in milliseconds,
and both the JVM's PEM keystore and OpenSSL read them.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files in `directory`: the CA's certificate, the server's key and chain."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    server_bundle: Path
    """The server's private key then its certificate, one file: Kafka's `ssl.keystore.type=PEM` location."""
    client_cert: Path
    client_key: Path
    """A client certificate (CN nerve-client) signed by the same CA, for mutual TLS."""

    @property
    def ca_pem(self) -> str:
        return self.ca_cert.read_text()


def ensure(directory: Path, common_name: str = "nerve-local") -> Pki:
    """The CA and server certificate in `directory`, made on the first call and reused after (a restart
    of the server keeps the certificates its clients were given)."""
    pki = Pki(directory / "ca.crt", directory / "server.crt", directory / "server.key", directory / "server.pem",
              directory / "client.crt", directory / "client.key")
    if all(p.exists() for p in (pki.ca_cert, pki.server_cert, pki.server_key, pki.server_bundle, pki.client_cert,
                                pki.client_key)):
        return pki
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nerve-client")]))
        .issuer_name(ca_name).public_key(client_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pki.client_cert.write_bytes(client.public_bytes(pem))
    pki.client_key.write_bytes(client_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    pki.client_key.chmod(0o600)
    server_pem = server.public_bytes(pem)
    pki.ca_cert.write_bytes(ca.public_bytes(pem))
    pki.server_cert.write_bytes(server_pem)
    pki.server_key.write_bytes(key_pem)
    pki.server_key.chmod(0o600)
    pki.server_bundle.write_bytes(key_pem + server_pem)
    pki.server_bundle.chmod(0o600)
    return pki
