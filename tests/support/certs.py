"""Certificates for https test servers: a CA and a serving certificate for 127.0.0.1 and localhost."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.tls import Issued, issue, new_ca


@dataclass(frozen=True)
class Authority:
    ca: Issued
    serving: Issued

    @property
    def pem(self) -> str:
        """What a Destination's CACerts carries."""
        return self.ca.cert_pem.decode()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert.write_bytes(self.serving.cert_pem)
            key.write_bytes(self.serving.key_pem)
            context.load_cert_chain(cert, key)
        return context


def make_ca(name: str = "test CA") -> Authority:
    ca = new_ca(name)
    return Authority(ca, issue(ca, ["127.0.0.1", "localhost"]))
