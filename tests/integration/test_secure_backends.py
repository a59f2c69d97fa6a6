"""Kafka over SASL_SSL and NATS over TLS with a user, as a user configures them: Secrets, a Broker's
ConfigMap `auth.secret.ref.name`, a KafkaSource's `spec.net`, applied through the control API, events
sent through the ingress to a real subscriber. The servers are real and refuse plaintext and wrong
credentials (tests/fixtures/servers.py: `kafka_sasl_ssl`, `nats_tls`)."""

from __future__ import annotations

import asyncio
import base64
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from channels.kafka import client_security
from core.backend_security import KafkaSecurity
from tests.fixtures.servers import SecureKafka, SecureNats
from tests.support.manifests import broker, channel, subscription, trigger
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, eventually, running_stack


def secret(name: str, **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "ns1"},
            "stringData": dict(values)}


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns1"}, "data": data}


def configured_broker(broker_class: str, config: str) -> dict[str, Any]:
    obj = broker("default", **{"eventing.knative.dev/broker.class": broker_class})
    obj["spec"] = {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": config, "namespace": "ns1"}}
    return obj


def kafka_secret(kafka: SecureKafka, mechanism: str, password: str | None = None) -> dict[str, Any]:
    user, right = kafka.users[mechanism]
    return secret("kafka-auth", protocol="SASL_SSL", **{"sasl.mechanism": mechanism}, user=user,
                  password=right if password is None else password, **{"ca.crt": kafka.ca_pem})


async def condition(stack: Stack, kind: str, name: str, type_: str = "Ready") -> dict[str, Any]:
    status = (await stack.get(kind, "ns1", name)).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


async def ready(stack: Stack, kind: str, name: str, timeout: float = 30.0) -> None:
    async def check() -> bool:
        return (await condition(stack, kind, name)).get("status") == "True"

    try:
        await eventually(check, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{kind} {name} not Ready: {await stack.get(kind, 'ns1', name)}") from None


async def not_ready_saying(stack: Stack, kind: str, name: str, *words: str, timeout: float = 30.0) -> dict[str, Any]:
    async def check() -> bool:
        ready = await condition(stack, kind, name)
        return ready.get("status") == "False" and all(w in ready.get("message", "") for w in words)

    try:
        await eventually(check, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{kind} {name} never said {words}: {await stack.get(kind, 'ns1', name)}") from None
    return await condition(stack, kind, name)


async def answers_503_never_202(stack: Stack) -> None:
    """The ingress refuses what it cannot store. Status is written before the contract is published, so
    the route may be a moment away (404 meanwhile); what must never come is a 202."""
    answers: list[int] = []

    async def refused() -> bool:
        answers.append(await stack.send("/ns1/default", event(f"lost-{len(answers)}")))
        return answers[-1] == 503

    await eventually(refused, timeout=15, interval=0.2)
    assert 202 not in answers, answers


async def test_kafka_broker_delivers_end_to_end_over_sasl_ssl_with_scram(
    tmp_path: Path, kafka_sasl_ssl: SecureKafka, receiver: Receiver
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(kafka_secret(kafka_sasl_ssl, "SCRAM-SHA-512"),
                          config_map("kafka-broker-config", **{"bootstrap.servers": kafka_sasl_ssl.bootstrap,
                                                               "auth.secret.ref.name": "kafka-auth"}),
                          configured_broker("Kafka", "kafka-broker-config"),
                          trigger("all", receiver.url))
        await ready(stack, "broker", "default")
        await ready(stack, "trigger", "all")
        # Control made the topic, the ingress publishes and the dispatcher reads: all over SASL_SSL.
        assert await stack.send("/ns1/default", event("secure-1", data=b'{"n": 1}')) == 202
        await receiver.wait_for(1, timeout=30)
        assert [(e.id, e.data) for e in receiver.events] == [("secure-1", b'{"n": 1}')]
        # The Secret is stored, and answered with its values hidden.
        shown = await stack.get("secret", "ns1", "kafka-auth")
        assert shown["data"] == dict.fromkeys(("protocol", "sasl.mechanism", "user", "password", "ca.crt"),
                                              "<redacted>")


async def test_kafka_broker_with_a_wrong_password_is_not_ready_and_the_ingress_answers_503(
    tmp_path: Path, kafka_sasl_ssl: SecureKafka
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(kafka_secret(kafka_sasl_ssl, "PLAIN", password="not-the-password"),
                          config_map("kafka-broker-config", **{"bootstrap.servers": kafka_sasl_ssl.bootstrap,
                                                               "auth.secret.ref.name": "kafka-auth"}),
                          configured_broker("Kafka", "kafka-broker-config"))
        ready = await not_ready_saying(stack, "broker", "default", "SaslAuthenticationFailed")
        assert "Invalid username or password" in ready["message"]
        await answers_503_never_202(stack)


async def test_a_broker_whose_auth_secret_is_missing_or_unusable_is_not_ready_and_takes_no_events(
    tmp_path: Path
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(config_map("kafka-broker-config", **{"bootstrap.servers": "127.0.0.1:1",
                                                               "auth.secret.ref.name": "kafka-auth"}),
                          configured_broker("Kafka", "kafka-broker-config"))
        ready = await not_ready_saying(stack, "broker", "default", "Secret ns1/kafka-auth does not exist")
        assert ready["reason"] == "FailedToGetBrokerAuthSecret"
        assert await stack.send("/ns1/default", event("nowhere")) == 404
        await stack.apply(secret("kafka-auth", protocol="SASL_SSL", **{"sasl.mechanism": "OAUTHBEARER"},
                                 user="u", password="p"))
        await not_ready_saying(stack, "broker", "default", "sasl.mechanism", "OAUTHBEARER", "SCRAM-SHA-512")
        await stack.apply(secret("kafka-auth", protocol="TLS"))
        await not_ready_saying(stack, "broker", "default", "protocol", "'TLS'", "SASL_SSL")
        # Client properties in the ConfigMap itself would configure nothing: refused, never ignored.
        await stack.apply(config_map("kafka-broker-config", **{"bootstrap.servers": "127.0.0.1:1",
                                                               "security.protocol": "SASL_SSL",
                                                               "sasl.password": "p"}))
        ready = await not_ready_saying(stack, "broker", "default", "'sasl.password', 'security.protocol'",
                                       "auth.secret.ref.name")
        assert ready["reason"] == "FailedToResolveConfig"


async def test_kafka_broker_with_a_client_certificate_delivers_over_mutual_tls_and_is_refused_without(
    tmp_path: Path, kafka_sasl_ssl: SecureKafka, receiver: Receiver
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(secret("kafka-auth", protocol="SSL", **{"ca.crt": kafka_sasl_ssl.ca_pem,
                                                                  "user.crt": kafka_sasl_ssl.client_cert_pem,
                                                                  "user.key": kafka_sasl_ssl.client_key_pem}),
                          config_map("kafka-broker-config", **{"bootstrap.servers": kafka_sasl_ssl.mtls_bootstrap,
                                                               "auth.secret.ref.name": "kafka-auth"}),
                          configured_broker("Kafka", "kafka-broker-config"),
                          trigger("all", receiver.url))
        await ready(stack, "broker", "default")
        await ready(stack, "trigger", "all")
        assert await stack.send("/ns1/default", event("mtls-1")) == 202
        await receiver.wait_for(1, timeout=30)
        assert [e.id for e in receiver.events] == ["mtls-1"]
        # user.skip drops the certificate: the listener requires one, so the Broker is no longer Ready.
        await stack.apply(secret("kafka-auth", protocol="SSL", **{"ca.crt": kafka_sasl_ssl.ca_pem,
                                                                  "user.crt": kafka_sasl_ssl.client_cert_pem,
                                                                  "user.key": kafka_sasl_ssl.client_key_pem,
                                                                  "user.skip": "true"}))
        await not_ready_saying(stack, "broker", "default", "unreachable")


async def test_kafka_channel_follows_knatives_kafka_channel_config_over_sasl_ssl(
    tmp_path: Path, kafka_sasl_ssl: SecureKafka, receiver: Receiver
) -> None:
    in_eventing = {"namespace": "knative-eventing"}
    auth = kafka_secret(kafka_sasl_ssl, "SCRAM-SHA-256")
    auth["metadata"].update(in_eventing)
    config = config_map("kafka-channel-config", **{"bootstrap.servers": kafka_sasl_ssl.bootstrap,
                                                   "auth.secret.ref.name": "kafka-auth"})
    config["metadata"].update(in_eventing)
    kafka_channel = {"kind": "KafkaChannel", "api_version": "messaging.knative.dev/v1beta1"}
    async with running_stack(tmp_path) as stack:
        # The ConfigMap before its Secret: the channel waits, not Ready, naming what is missing.
        await stack.apply(config, channel("orders", **kafka_channel))
        await not_ready_saying(stack, "kafkachannel", "orders", "Secret knative-eventing/kafka-auth does not exist")
        await stack.apply(auth, subscription("to-receiver", receiver.url, channel="orders",
                                             channel_kind="KafkaChannel",
                                             channel_api_version="messaging.knative.dev/v1beta1"))
        await ready(stack, "kafkachannel", "orders")
        await ready(stack, "subscription", "to-receiver")
        assert await stack.send("/channels/ns1/orders", event("channel-secure-1")) == 202
        await receiver.wait_for(1, timeout=30)
        assert [e.id for e in receiver.events] == ["channel-secure-1"]


async def _secure_topic(kafka: SecureKafka) -> str:
    name = f"secure-topic-{uuid.uuid4().hex[:8]}"
    user, password = kafka.users["SCRAM-SHA-256"]
    options = client_security(KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", user, password, ca_pem=kafka.ca_pem))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return name


def kafka_source(kafka: SecureKafka, topic: str, sink: str, *, password_key: str = "password") -> dict[str, Any]:
    def ref(key: str) -> dict[str, Any]:
        return {"secretKeyRef": {"name": "source-auth", "key": key}}

    return {"apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource",
            "metadata": {"name": "orders", "namespace": "ns1"},
            "spec": {"bootstrapServers": [kafka.bootstrap], "topics": [topic], "sink": {"uri": sink},
                     "initialOffset": "earliest",
                     "net": {"sasl": {"enable": True, "user": ref("user"), "password": ref(password_key),
                                      "type": ref("saslType")},
                             "tls": {"enable": True, "caCert": ref("ca.crt")}}}}


async def test_kafka_source_reads_over_sasl_ssl_with_its_net_secrets(
    tmp_path: Path, kafka_sasl_ssl: SecureKafka, receiver: Receiver
) -> None:
    topic = await _secure_topic(kafka_sasl_ssl)
    user, password = kafka_sasl_ssl.users["SCRAM-SHA-512"]
    async with running_stack(tmp_path) as stack:
        await stack.apply(secret("source-auth", user=user, password=password, saslType="SCRAM-SHA-512",
                                 **{"ca.crt": kafka_sasl_ssl.ca_pem}),
                          kafka_source(kafka_sasl_ssl, topic, receiver.url))
        await ready(stack, "kafkasource", "orders")
        options = client_security(KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", user, password,
                                                ca_pem=kafka_sasl_ssl.ca_pem))
        producer = AIOKafkaProducer(bootstrap_servers=kafka_sasl_ssl.bootstrap, **options)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value=b'{"total": 3}', key=b"k1")
        finally:
            await producer.stop()
        await receiver.wait_for(1, timeout=30)
        assert receiver.events[0].data == b'{"total": 3}'
        assert receiver.events[0].attributes["key"] == "k1"


async def test_kafka_source_with_a_missing_secret_key_or_a_wrong_password_is_not_ready(
    tmp_path: Path, kafka_sasl_ssl: SecureKafka, receiver: Receiver
) -> None:
    topic = await _secure_topic(kafka_sasl_ssl)
    user, _ = kafka_sasl_ssl.users["SCRAM-SHA-512"]
    async with running_stack(tmp_path) as stack:
        await stack.apply(secret("source-auth", user=user, password="wrong", saslType="SCRAM-SHA-512",
                                 **{"ca.crt": kafka_sasl_ssl.ca_pem}),
                          kafka_source(kafka_sasl_ssl, topic, receiver.url, password_key="passwd"))
        ready = await not_ready_saying(stack, "kafkasource", "orders",
                                       "spec.net.sasl.password.secretKeyRef", "has no key 'passwd'")
        assert ready["reason"] == "ClientCreationFailed"
        await stack.apply(kafka_source(kafka_sasl_ssl, topic, receiver.url))
        await not_ready_saying(stack, "kafkasource", "orders", "SaslAuthenticationFailed")


def nats_secret(nats: SecureNats, password: str | None = None) -> dict[str, Any]:
    return secret("nats-auth", user=nats.user, password=nats.password if password is None else password,
                  **{"ca.crt": nats.ca_pem})


async def test_nats_broker_delivers_end_to_end_over_tls_with_a_user(
    tmp_path: Path, nats_tls: SecureNats, receiver: Receiver
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(nats_secret(nats_tls),
                          config_map("nats-broker-config", url=nats_tls.url, **{"auth.secret.ref.name": "nats-auth"}),
                          configured_broker("NatsJetStreamBroker", "nats-broker-config"),
                          trigger("all", receiver.url))
        await ready(stack, "broker", "default")
        await ready(stack, "trigger", "all")
        assert await stack.send("/ns1/default", event("nats-secure-1", data=b'{"n": 2}')) == 202
        await receiver.wait_for(1, timeout=30)
        assert [(e.id, e.data) for e in receiver.events] == [("nats-secure-1", b'{"n": 2}')]


async def test_nats_broker_with_a_wrong_password_is_not_ready_and_the_ingress_answers_503(
    tmp_path: Path, nats_tls: SecureNats
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(nats_secret(nats_tls, password="not-the-password"),
                          config_map("nats-broker-config", url=nats_tls.url, **{"auth.secret.ref.name": "nats-auth"}),
                          configured_broker("NatsJetStreamBroker", "nats-broker-config"))
        await not_ready_saying(stack, "broker", "default", "Authorization Violation")
        await answers_503_never_202(stack)


NERVE = str(Path(sys.executable).with_name("nerve"))
SECRET_YAML = """
apiVersion: v1
kind: Secret
metadata: {name: kafka-auth, namespace: ns1}
stringData: {protocol: SASL_SSL, user: alice, password: s3cret}
"""


async def nerve(stack: Stack, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(NERVE, *args, env=stack.cli_env, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin else None)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_nerve_get_secret_hides_its_values_unless_asked_and_bad_base64_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        code, out, err = await nerve(stack, "apply", "-f", "-", stdin=SECRET_YAML)
        assert (code, out.strip()) == (0, "secret/kafka-auth created"), err
        code, out, _ = await nerve(stack, "get", "secrets", "-n", "ns1")
        assert code == 0 and out.split("\n")[1].split()[:3] == ["kafka-auth", "Opaque", "3"], out
        code, out, _ = await nerve(stack, "get", "secret", "kafka-auth", "-n", "ns1", "-o", "yaml")
        shown = yaml.safe_load(out)
        assert code == 0 and shown["data"] == dict.fromkeys(("protocol", "user", "password"), "<redacted>")
        assert "s3cret" not in out and "stringData" not in shown
        code, out, _ = await nerve(stack, "get", "secret", "kafka-auth", "-n", "ns1", "-o", "yaml", "--show-secrets")
        assert code == 0 and base64.b64decode(yaml.safe_load(out)["data"]["password"]) == b"s3cret"
        code, out, err = await nerve(stack, "apply", "-f", "-", stdin=SECRET_YAML.replace(
            "stringData: {protocol: SASL_SSL, user: alice, password: s3cret}", "data: {password: s3cret!}"))
        assert code == 2 and "data.password" in err and "base64" in err, err


async def test_nats_jetstream_channel_follows_eventing_natss_config_nats_over_tls(
    tmp_path: Path, nats_tls: SecureNats, receiver: Receiver
) -> None:
    host = nats_tls.url.removeprefix("tls://")
    settings = yaml.safe_dump({"url": f"tls://{nats_tls.user}:{nats_tls.password}@{host}",
                               "tls": {"caBundle": base64.b64encode(nats_tls.ca_pem.encode()).decode()}})
    config = config_map("config-nats", **{"eventing-nats": settings})
    config["metadata"]["namespace"] = "knative-eventing"
    nats_channel = {"kind": "NatsJetStreamChannel", "api_version": "messaging.knative.dev/v1alpha1"}
    async with running_stack(tmp_path) as stack:
        await stack.apply(config, channel("orders", **nats_channel),
                          subscription("to-receiver", receiver.url, channel="orders",
                                       channel_kind="NatsJetStreamChannel",
                                       channel_api_version="messaging.knative.dev/v1alpha1"))
        await ready(stack, "natsjetstreamchannel", "orders")
        await ready(stack, "subscription", "to-receiver")
        assert await stack.send("/channels/ns1/orders", event("nats-channel-1")) == 202
        await receiver.wait_for(1, timeout=30)
        assert [e.id for e in receiver.events] == ["nats-channel-1"]
        status = (await stack.get("natsjetstreamchannel", "ns1", "orders"))["status"]
        assert status["annotations"]["nerve.dev/nats-url"] == nats_tls.url  # the password moved out of the URL


async def test_nats_broker_with_credentials_in_its_url_keeps_them_out_of_its_status(
    tmp_path: Path, nats_tls: SecureNats, receiver: Receiver
) -> None:
    host = nats_tls.url.removeprefix("tls://")
    async with running_stack(tmp_path) as stack:
        await stack.apply(secret("nats-ca", **{"ca.crt": nats_tls.ca_pem}),
                          config_map("nats-broker-config", url=f"tls://{nats_tls.user}:{nats_tls.password}@{host}",
                                     **{"auth.secret.ref.name": "nats-ca"}),
                          configured_broker("NatsJetStreamBroker", "nats-broker-config"))
        # The URL's user with the Secret's CA (eventing-natss users write credentials into the URL).
        await stack.apply(trigger("all", receiver.url))
        await ready(stack, "broker", "default")
        await ready(stack, "trigger", "all")
        assert await stack.send("/ns1/default", event("url-user-1")) == 202
        await receiver.wait_for(1, timeout=30)
        assert nats_tls.password not in str(await stack.get("broker", "ns1", "default"))
        # Credentials both in the URL and in the Secret: refused, not one of them silently dropped.
        await stack.apply(nats_secret(nats_tls) | {"metadata": {"name": "nats-ca", "namespace": "ns1"}})
        await not_ready_saying(stack, "broker", "default", "give them one way")
        await stack.apply(config_map("nats-broker-config", url=f"tls://{nats_tls.user}:{nats_tls.password}@{host}"))
        # No CA now: the server's certificate is not in the system store, and the condition says so.
        await not_ready_saying(stack, "broker", "default", "CERTIFICATE_VERIFY_FAILED")
        shown = await stack.get("broker", "ns1", "default")
        assert nats_tls.password not in str(shown)
