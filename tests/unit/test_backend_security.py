"""Backend connection security as policy: Secrets resolved into KafkaSecurity/NatsSecurity, what is
refused (with the field named), how it travels in the contract, and the v1 Secret kind."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest

from channels.kafka import client_security
from control.api.admission import AdmissionSettings, Refused, admit
from control.reconcilers.snapshot import Snapshot
from control.redaction import REDACTED, redact
from control.secrets import (
    SecretProblem,
    kafka_auth_secret,
    kafka_source_net,
    misplaced_security_keys,
    nats_auth_secret,
    nats_channel_cluster,
    without_userinfo,
)
from core.backend_security import KafkaSecurity, NatsSecurity
from core.contract import Contract, Egress, Reference, Resource, Source
from tests.support.launchers import SCRIPTS


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    sys.path.insert(0, str(SCRIPTS))
    from _certs import ensure

    return ensure(Path(tmp_path_factory.mktemp("pki"))).ca_pem


def stored_secret(name: str, **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "ns1"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def lookup(*secrets: dict[str, Any]) -> Snapshot:
    return Snapshot.of(secrets)


def test_a_sasl_ssl_secret_becomes_the_clients_settings(ca_pem: str) -> None:
    security = kafka_auth_secret(lookup(stored_secret("auth", protocol="SASL_SSL", user="u", password="p",
                                                      **{"ca.crt": ca_pem, "sasl.mechanism": "SCRAM-SHA-512"})),
                                 "ns1", "auth")
    assert security == KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "u", "p", ca_pem=ca_pem)
    options = client_security(security)
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "p"}
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    logged = repr(KafkaSecurity("SASL_SSL", "PLAIN", "u", "hunter2", ca_pem=ca_pem, key_pem="PRIVATE"))
    assert "hunter2" not in logged and "PRIVATE" not in logged


def test_sasl_mechanism_defaults_to_plain_as_knative() -> None:
    security = kafka_auth_secret(lookup(stored_secret("auth", protocol="SASL_PLAINTEXT", user="u", password="p")),
                                 "ns1", "auth")
    assert (security.protocol, security.mechanism) == ("SASL_PLAINTEXT", "PLAIN")


@pytest.mark.parametrize(("values", "words"), [
    ({}, ["key 'protocol' is required"]),
    ({"protocol": "TLS"}, ["protocol", "'TLS'", "SASL_SSL"]),
    ({"protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER", "user": "u", "password": "p"},
     ["sasl.mechanism", "OAUTHBEARER", "SCRAM-SHA-256"]),
    ({"protocol": "SASL_PLAINTEXT", "user": "u"}, ["user and password"]),
    ({"protocol": "SSL", "ca.crt": "not a certificate"}, ["ca.crt", "not a PEM certificate"]),
    ({"protocol": "SSL", "user.crt": "x"}, ["user.crt and user.key"]),
])
def test_an_unusable_kafka_secret_is_refused_naming_the_key(values: dict[str, str], words: list[str]) -> None:
    with pytest.raises(SecretProblem) as caught:
        kafka_auth_secret(lookup(stored_secret("auth", **values)), "ns1", "auth")
    assert caught.value.reason == "FailedToGetBrokerAuthSecret"
    assert all(w in caught.value.message for w in words), caught.value.message


def test_a_missing_secret_is_named() -> None:
    with pytest.raises(SecretProblem, match="Secret ns1/auth does not exist"):
        kafka_auth_secret(lookup(), "ns1", "auth")


def _ref(key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": "net", "key": key}}


def test_kafka_source_net_protocol_follows_what_is_enabled(ca_pem: str) -> None:
    secrets = lookup(stored_secret("net", u="alice", p="pw", t="SCRAM-SHA-256", ca=ca_pem))
    sasl = {"enable": True, "user": _ref("u"), "password": _ref("p"), "type": _ref("t")}
    tls = {"enable": True, "caCert": _ref("ca")}
    assert kafka_source_net(secrets, "ns1", {"net": {"sasl": sasl, "tls": tls}}) == KafkaSecurity(
        "SASL_SSL", "SCRAM-SHA-256", "alice", "pw", ca_pem=ca_pem)
    assert kafka_source_net(secrets, "ns1", {"net": {"sasl": sasl}}) == KafkaSecurity(
        "SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "pw")
    assert kafka_source_net(secrets, "ns1", {"net": {"tls": tls}}) == KafkaSecurity("SSL", ca_pem=ca_pem)
    assert kafka_source_net(secrets, "ns1", {"net": {"sasl": {**sasl, "enable": False}}}) is None
    with pytest.raises(SecretProblem, match=r"spec.net: sasl.type: 'GSSAPI'"):
        kafka_source_net(lookup(stored_secret("net", u="a", p="b", t="GSSAPI")), "ns1", {"net": {"sasl": sasl}})
    with pytest.raises(SecretProblem, match=r"spec.net.sasl.password.secretKeyRef: Secret ns1/net has no key 'p'"):
        kafka_source_net(lookup(stored_secret("net", u="a", t="PLAIN")), "ns1", {"net": {"sasl": sasl}})


def test_nats_secret_and_url_decide_tls_and_one_way_to_authenticate(ca_pem: str) -> None:
    secrets = lookup(stored_secret("n", user="u", password="p", **{"ca.crt": ca_pem}))
    assert nats_auth_secret(secrets, "ns1", "n", "nats://h:4222") == NatsSecurity(
        tls=True, user="u", password="p", ca_pem=ca_pem)
    assert nats_auth_secret(lookup(stored_secret("n", token="t")), "ns1", "n", "nats://h:4222") == \
        NatsSecurity(token="t")
    with pytest.raises(SecretProblem, match="user/password and token both given"):
        nats_auth_secret(lookup(stored_secret("n", user="u", password="p", token="t")), "ns1", "n", "nats://h")
    with pytest.raises(SecretProblem, match="'user' and 'password' go together"):
        nats_auth_secret(lookup(stored_secret("n", user="u")), "ns1", "n", "nats://h")


def test_security_travels_in_the_contract_and_is_part_of_the_resource(ca_pem: str) -> None:
    kafka = KafkaSecurity("SASL_SSL", "PLAIN", "u", "p", ca_pem=ca_pem)
    nats = NatsSecurity(tls=True, user="u", password="p")
    ref = Reference("u1", "ns1", "b", "Broker")
    source_ref = Reference("s1", "ns1", "s", "KafkaSource")
    contract = Contract(1, resources=(
        Resource("u1", ref, "kafka", "t", "/ns1/b", bootstrap_servers="h:9093", security=kafka),
        Resource("u2", ref, "nats", "t", "/ns1/c", backend_config={"url": "tls://h"}, security=nats),
        Resource("u3", ref, "kafka", "t", "/ns1/d", bootstrap_servers="h:9092")),
        sources=(Source("s1", source_ref, Egress("s1", source_ref, "g", "http://sink"), security=kafka),))
    again = Contract.loads(contract.dumps())
    assert again == contract
    assert [r.security for r in again.resources] == [kafka, nats, None]
    assert "security" not in again.to_json()["resources"][2]


SETTINGS = AdmissionSettings()


def test_secret_string_data_is_stored_as_base64_data_and_answered_redacted() -> None:
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns1"},
                "data": {"user": base64.b64encode(b"alice").decode()}, "stringData": {"password": "pw"}}
    stored = admit(manifest, None, SETTINGS).obj
    assert "stringData" not in stored
    assert stored["type"] == "Opaque"
    assert base64.b64decode(stored["data"]["password"]) == b"pw"
    assert redact(stored)["data"] == {"user": REDACTED, "password": REDACTED}


def test_secret_data_that_is_not_base64_is_refused_naming_the_key() -> None:
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns1"},
                "data": {"password": "not base64!"}}
    with pytest.raises(Refused) as caught:
        admit(manifest, None, SETTINGS)
    assert [e.path for e in caught.value.errors] == ["data.password"]


def _kafka_source(net: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource",
            "metadata": {"name": "k", "namespace": "ns1"},
            "spec": {"bootstrapServers": ["h:9092"], "topics": ["t"], "sink": {"uri": "http://sink/"}, "net": net}}


@pytest.mark.parametrize(("net", "path", "words"), [
    ({"sasl": {"enable": True, "user": _ref("u")}}, "spec.net.sasl.password", "required when SASL is enabled"),
    ({"sasl": {"enable": "yes"}}, "spec.net.sasl.enable", "true or false"),
    ({"tls": {"enable": True, "caCert": {"secretKeyRef": {"name": "x"}}}}, "spec.net.tls.caCert", "secretKeyRef"),
    ({"sasl": {"enable": True, "user": _ref("u"), "password": _ref("p"), "tokenProvider": _ref("t")}},
     "spec.net.sasl.tokenProvider", "not supported"),
])
def test_kafka_source_net_shape_is_refused_at_apply_naming_the_field(net: dict[str, Any], path: str,
                                                                     words: str) -> None:
    with pytest.raises(Refused) as caught:
        admit(_kafka_source(net), None, SETTINGS)
    assert [(e.path, words in e.reason) for e in caught.value.errors] == [(path, True)]


@pytest.mark.parametrize(("backend", "data", "misplaced"), [
    ("kafka", {"bootstrap.servers": "h", "default.topic.partitions": "3", "auth.secret.ref.name": "s"}, []),
    ("kafka", {"security.protocol": "SSL", "sasl.jaas.config": "x", "ssl.truststore.location": "/t"},
     ["sasl.jaas.config", "security.protocol", "ssl.truststore.location"]),
    ("nats", {"url": "tls://h", "max.bytes": "10", "auth.secret.ref.name": "s"}, []),
    ("nats", {"url": "h", "user": "u", "token": "t", "tls.crt": "c"}, ["tls.crt", "token", "user"]),
])
def test_security_keys_in_a_brokers_configmap_are_named(backend: str, data: dict[str, str],
                                                        misplaced: list[str]) -> None:
    assert misplaced_security_keys(backend, data) == misplaced


def test_tls_without_a_ca_uses_the_system_store_and_is_refused_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client_security(KafkaSecurity("SSL"))["ssl_context"] is not None  # this machine has a store
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with pytest.raises(SecretProblem, match=r"system trust store is empty.*add ca\.crt"):
        kafka_auth_secret(lookup(stored_secret("auth", protocol="SSL")), "ns1", "auth")


def _config_nats(text: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "config-nats", "namespace": "knative-eventing"}, "data": {"eventing-nats": text}}


def test_config_nats_as_eventing_natss_writes_it(ca_pem: str) -> None:
    bundle = base64.b64encode(ca_pem.encode()).decode()
    url, security, problem = nats_channel_cluster(
        lookup(_config_nats(f"url: tls://u:p@n1:4222,tls://n2:4222\ntls: {{caBundle: {bundle}}}\n")), "nats://x")
    assert (url, problem) == ("tls://n1:4222,tls://n2:4222", None)
    assert security == NatsSecurity(tls=True, user="u", password="p", ca_pem=ca_pem)
    assert nats_channel_cluster(lookup(), "nats://default:4222") == ("nats://default:4222", None, None)
    creds = {**stored_secret("creds", **{"nats.creds": "JWT+SEED"}), "metadata": {"name": "creds",
                                                                                   "namespace": "knative-eventing"}}
    _, security, _ = nats_channel_cluster(lookup(_config_nats(
        "url: nats://n:4222\nauth: {credentialFile: {secret: {name: creds}}}"), creds), "")
    assert security == NatsSecurity(credentials="JWT+SEED")


@pytest.mark.parametrize(("text", "words"), [
    ("url: [", "not YAML"),
    ("tls: {caBundle: '!!'}", "tls.caBundle: not base64"),
    ("auth: {credentialFile: {secret: {name: gone}}}", "Secret knative-eventing/gone does not exist"),
    ("auth: {tls: {secret: {name: gone}}}", "auth.tls.secret: Secret knative-eventing/gone does not exist"),
])
def test_config_nats_that_cannot_be_used_is_named(text: str, words: str) -> None:
    _, security, problem = nats_channel_cluster(lookup(_config_nats(text)), "nats://x")
    assert security is None and problem is not None and words in problem.message, problem


@pytest.mark.parametrize(("urls", "expected"), [
    ("nats://127.0.0.1:4222", ("nats://127.0.0.1:4222", "", "")),
    ("127.0.0.1:4222", ("127.0.0.1:4222", "", "")),
    ("tls://al%40ce:p%3Ass@n1:4222,tls://n2:4222", ("tls://n1:4222,tls://n2:4222", "al@ce", "p:ss")),
    ("nats://u:p@[::1]:4222", ("nats://[::1]:4222", "u", "p")),
])
def test_credentials_leave_a_nats_url(urls: str, expected: tuple[str, str, str]) -> None:
    assert without_userinfo(urls) == expected
