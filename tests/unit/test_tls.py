"""core/tls.py: CACerts checks at admission, the per-PEM client contexts, the embedded CA of nerve up."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from control.api.admission import AdmissionSettings, admit
from core.errors import InvalidResource
from core.tls import client_context, context_for, ensure_embedded_ca, issue, new_ca, pem_problem

SETTINGS = AdmissionSettings("MTChannelBasedBroker")
CA = new_ca("test CA").cert_pem.decode()
OTHER = new_ca("other CA").cert_pem.decode()


@pytest.mark.parametrize(("value", "ok"), [
    (CA, True),
    (CA + OTHER, True),  # a bundle
    ("pem", False),
    ("", False),
    (42, False),
    ("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", False),
    (new_ca("x").key_pem.decode(), False),  # a key is not a certificate
])
def test_pem_problem(value: Any, ok: bool) -> None:
    assert (pem_problem(value) is None) is ok


def _trigger(subscriber: dict[str, Any], delivery: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"broker": "default", "subscriber": subscriber}
    if delivery:
        spec["delivery"] = delivery
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"namespace": "ns1", "name": "t1"}, "spec": spec}


@pytest.mark.parametrize(("manifest", "field"), [
    (_trigger({"uri": "https://s/", "CACerts": "garbage"}), "spec.subscriber.CACerts"),
    (_trigger({"uri": "https://s/"}, {"deadLetterSink": {"uri": "https://d/", "CACerts": "x"}}),
     "spec.delivery.deadLetterSink.CACerts"),
    ({"apiVersion": "messaging.knative.dev/v1", "kind": "Subscription", "metadata": {"namespace": "ns1", "name": "s"},
      "spec": {"channel": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "c"},
               "subscriber": {"uri": "https://s/"}, "reply": {"uri": "https://r/", "CACerts": "nope"}}},
     "spec.reply.CACerts"),
    ({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": {"namespace": "ns1", "name": "p"},
      "spec": {"schedule": "* * * * *", "sink": {"uri": "https://s/", "CACerts": "nope"}}}, "spec.sink.CACerts"),
])
def test_invalid_ca_certs_refused_naming_the_field(manifest: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidResource) as refused:
        admit(manifest, None, SETTINGS)
    assert [(e.path, e.reason) for e in refused.value.errors] == [(field, "not a PEM certificate")]


def test_valid_ca_certs_accepted_without_a_warning() -> None:
    admitted = admit(_trigger({"uri": "https://s/", "CACerts": CA}), None, SETTINGS)
    assert admitted.obj["spec"]["subscriber"]["CACerts"] == CA
    assert [w.path for w in admitted.warnings] == []


def test_client_contexts_are_cached_by_pem() -> None:
    assert client_context(CA) is client_context(CA)
    assert client_context(CA) is not client_context(OTHER)
    assert client_context(CA).verify_mode == ssl.CERT_REQUIRED and client_context(CA).check_hostname
    assert context_for("http://s/", CA) is None
    assert context_for("https://s/", None) is None
    assert context_for("https://s/", CA) is client_context(CA)


def test_embedded_ca_is_made_once_and_covers_localhost(tmp_path: Path) -> None:
    files = ensure_embedded_ca(tmp_path / "tls", ["0.0.0.0"])
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert (files.key.stat().st_mode & 0o777) == 0o600
    ca_before, cert_before = files.ca.read_bytes(), files.cert.read_bytes()
    again = ensure_embedded_ca(tmp_path / "tls")
    assert (again.ca.read_bytes(), again.cert.read_bytes()) == (ca_before, cert_before)
    # Another listen host: a new serving certificate from the same CA.
    third = ensure_embedded_ca(tmp_path / "tls", ["10.1.2.3"])
    assert third.ca.read_bytes() == ca_before and third.cert.read_bytes() != cert_before


def test_issued_certificate_verifies_against_its_ca_only() -> None:
    ca = new_ca("a")
    served = issue(ca, ["localhost"])
    served.certificate.verify_directly_issued_by(ca.certificate)
    with pytest.raises(ValueError):
        served.certificate.verify_directly_issued_by(new_ca("b").certificate)


def _broker_with(status: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"namespace": "ns1", "name": "b"},
            "status": status}


PERMISSIVE = {"address": {"name": "http", "url": "http://h/ns1/b"},
              "addresses": [{"name": "https", "url": "https://h/ns1/b", "CACerts": CA},
                            {"name": "http", "url": "http://h/ns1/b"}]}
REF = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "b"}


@pytest.mark.parametrize(("status", "dest", "expected"), [
    ({"address": {"url": "http://h/ns1/b"}}, {"ref": REF}, ("http://h/ns1/b", None)),
    # Knative's selectAddress: the first of status.addresses (https under permissive), with its CACerts.
    (PERMISSIVE, {"ref": REF}, ("https://h/ns1/b", CA)),
    (PERMISSIVE, {"ref": {**REF, "address": "http"}}, ("http://h/ns1/b", None)),
    # The Destination's own CACerts win over the address's.
    (PERMISSIVE, {"ref": REF, "CACerts": OTHER}, ("https://h/ns1/b", OTHER)),
    (PERMISSIVE, {"ref": REF, "uri": "/extra"}, ("https://h/extra", CA)),
    ({}, {"uri": "https://s/", "CACerts": CA}, ("https://s/", CA)),
])
def test_resolution_picks_the_address_and_its_ca(status: dict[str, Any], dest: dict[str, Any],
                                                 expected: tuple[str, str | None]) -> None:
    from control.reconcilers.snapshot import Snapshot
    from control.resolver import Resolver
    resolved = Resolver(Snapshot.of([_broker_with(status)]), "").resolve_address(dest, "ns1")
    assert (resolved.url, resolved.ca_certs) == expected


def test_unknown_address_name_does_not_resolve() -> None:
    from control.reconcilers.snapshot import Snapshot
    from control.resolver import Resolver, Unresolvable
    with pytest.raises(Unresolvable, match="no address named 'grpc'"):
        Resolver(Snapshot.of([_broker_with(PERMISSIVE)]), "").resolve_address(
            {"ref": {**REF, "address": "grpc"}}, "ns1")


@pytest.mark.parametrize(("mode", "address", "addresses"), [
    ("disabled", {"url": "http://h:8080/ns1/b"}, None),
    ("permissive", {"name": "http", "url": "http://h:8080/ns1/b"},
     [{"name": "https", "url": "https://h:8443/ns1/b", "CACerts": CA}, {"name": "http", "url": "http://h:8080/ns1/b"}]),
    ("strict", {"name": "https", "url": "https://h:8443/ns1/b", "CACerts": CA},
     [{"name": "https", "url": "https://h:8443/ns1/b", "CACerts": CA}]),
])
def test_addresses_per_mode_as_knative_writes_them(tmp_path: Path, mode: str, address: dict[str, Any],
                                                   addresses: list[dict[str, Any]] | None) -> None:
    from control.reconcilers.resources.address import addressable
    from control.settings import ControlSettings
    from core.features import Features
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(CA)
    settings = ControlSettings(ingress_base_url="http://h:8080", ingress_https_base_url="https://h:8443/",
                               ingress_ca_certs=str(ca_file))
    out = addressable("/ns1/b", settings, Features.from_json({"transport-encryption": mode}))
    assert out.get("address") == address
    assert out.get("addresses") == addresses


def test_addresses_without_a_ca_file_carry_no_ca_certs() -> None:
    from control.reconcilers.resources.address import addressable
    from control.settings import ControlSettings
    from core.features import Features
    out = addressable("/ns1/b", ControlSettings(ingress_https_base_url="https://h"), Features("strict"))
    assert out["address"] == {"name": "https", "url": "https://h/ns1/b"}
