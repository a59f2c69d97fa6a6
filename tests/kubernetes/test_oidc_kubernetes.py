"""authentication-oidc on Kubernetes: the tokens are the API server's service-account tokens.

The operator (`python -m control --store kubernetes`, as the chart's control ServiceAccount, with only the
rights its RBAC grants) reads the API server's service-account issuer and keys into the contract; a real
`python -m ingress`, fed the contract ConfigMaps as the data plane mounts them (a directory of their
keys), verifies tokens a producer gets from the TokenRequest API. The operator creates each Trigger's OIDC
ServiceAccount, and the dispatcher's Kubernetes token source (core/kube_tokens.py), as the chart's
dispatcher ServiceAccount, gets tokens for it that the API server's TokenReview accepts; an event then goes
the whole way (producer token, ingress, NATS, `python -m dispatcher --token-source kubernetes`, subscriber)
on the cluster's identities. A key rotation (an API server restarted with a new signing key) reaches the
contract through the operator's periodic JWKS read.

No kubelet runs here, so no Pod mounts a projected token: the tokens come from TokenRequest directly,
which is what the kubelet asks for a projected volume too.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
import yaml
from kubernetes import client, config, dynamic

from control.api.admission import AdmissionSettings, admit
from control.api.broker import DEFAULT_CLASS_FOR_BACKEND
from control.operator.contract_configmap import ContractConfigMaps, part_name
from control.operator.service_accounts import LABEL
from core import oidc
from core.contract import INDEX_KEY, Contract, Resource, read
from core.events import to_binary
from core.kube_tokens import kubernetes_tokens
from tests.kubernetes.operator import Operator, as_chart_account, wait_for
from tests.kubernetes.support import apply, install_crds, render
from tests.kubernetes.test_operator import wait_ready
from tests.support.launchers import free_port, script
from tests.support.receiver import Receiver
from tests.support.services import Service
from tests.support.stack import event

OIDC_ON = ["--authentication-oidc", "enabled"]
TRIGGER_ACCOUNT_SUFFIX = "-oidc-eventing.knative.dev-trigger"


def account_kubeconfig(api_client: client.ApiClient, kubeconfig: Path, namespace: str, account: str,
                       path: Path) -> Path:
    """A kubeconfig acting as ServiceAccount `namespace/account`, with a token the API server issues."""
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    admin = yaml.safe_load(kubeconfig.read_text())
    admin["users"] = [{"name": account, "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = account
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(admin))
    return path


def mount(configmaps: list[Any], directory: Path) -> Path:
    """The contract ConfigMaps' keys as files, as a projected ConfigMap volume gives them to the data plane."""
    directory.mkdir(parents=True, exist_ok=True)
    for cm in configmaps:
        for key, value in (cm.data or {}).items():
            (directory / key).write_text(value)
        for key, value in (cm.binary_data or {}).items():
            (directory / key).write_bytes(base64.b64decode(value))
    return directory


def token_for(core: client.CoreV1Api, namespace: str, account: str, audience: str) -> str:
    """What `kubectl create token <account> --audience <audience>` prints (the TokenRequest API)."""
    request = {"spec": {"audiences": [audience], "expirationSeconds": 600}}
    return str(core.create_namespaced_service_account_token(account, namespace, request).status.token)


async def mounted_contract(k8s_client: client.ApiClient, setup: Setup, directory: Path,
                           ready: Callable[[Resource], bool]) -> Path:
    """The contract ConfigMaps mounted into `directory`, once the namespace's Broker entry is `ready`."""
    name = f"{setup.home}-contract"
    core = client.CoreV1Api(k8s_client)

    def written() -> Contract | None:
        contract = asyncio.run(ContractConfigMaps(k8s_client, setup.home, name).read())
        mine = [r for r in (contract.resources if contract else ()) if r.reference.namespace == setup.namespace]
        return contract if contract and contract.oidc and mine and ready(mine[0]) else None
    await asyncio.to_thread(wait_for, "the contract ConfigMaps", written)
    parts = int(orjson.loads(core.read_namespaced_config_map(name, setup.home).data[INDEX_KEY])["parts"])
    return mount([core.read_namespaced_config_map(part_name(name, i), setup.home) for i in range(parts)], directory)


def chart_account(k8s_client: client.ApiClient, kubeconfig: Path, setup: Setup, role: str, path: Path) -> Path:
    """A kubeconfig acting as the chart's ServiceAccount of `role`, with the RBAC the chart gives it."""
    admin = dynamic.DynamicClient(k8s_client)
    for doc in render(namespace=setup.home, release=setup.home):
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
            apply(admin, doc)
    return account_kubeconfig(k8s_client, kubeconfig, setup.home, f"{setup.home}-{role}", path)


def review(k8s_client: client.ApiClient, token: str, audience: str) -> Any:
    """The API server's TokenReview of `token` for `audience` (what a receiver outside Nerve would ask)."""
    return client.AuthenticationV1Api(k8s_client).create_token_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
         "spec": {"token": token, "audiences": [audience]}}).status


@dataclass
class Setup:
    namespace: str
    home: str
    operator: Operator
    audience: str


@pytest.fixture
def oidc_cluster(kube_apiserver: Path, k8s_client: client.ApiClient, nats_url: str,
                 tmp_path: Path) -> Iterator[Setup]:
    install_crds(k8s_client)
    core = client.CoreV1Api(k8s_client)
    home = f"nerve-{uuid.uuid4().hex[:6]}"
    namespace = f"oidc-{uuid.uuid4().hex[:6]}"
    for name in (home, namespace):
        core.create_namespace({"metadata": {"name": name}})
    account = as_chart_account(k8s_client, kube_apiserver, home, home, tmp_path / "account")
    operator = Operator(account, tmp_path / "op", home, nats_url=nats_url, lease_name=f"{home}-control",
                        contract_configmap=f"{home}-contract", extra=OIDC_ON).start()
    admin = dynamic.DynamicClient(k8s_client)
    defaults = AdmissionSettings(DEFAULT_CLASS_FOR_BACKEND["nats"])
    try:
        apply(admin, admit({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                            "metadata": {"name": "default", "namespace": namespace}}, None, defaults).obj)
        apply(admin, admit({"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "EventPolicy",
                            "metadata": {"name": "only-producer", "namespace": namespace},
                            "spec": {"to": [{"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                                     "name": "default"}}],
                                     "from": [{"sub": f"system:serviceaccount:{namespace}:producer"}]}},
                           None, defaults).obj)
        broker = wait_ready(admin, "Broker", namespace, "default", operator)
        audience = broker["status"]["address"]["audience"]
        assert audience == f"eventing.knative.dev/broker/{namespace}/default"
        assert [p["name"] for p in broker["status"]["policies"]] == ["only-producer"]
        yield Setup(namespace, home, operator, audience)
    finally:
        code = operator.stop()
        core.delete_namespace(namespace)
        core.delete_namespace(home)
    assert code == 0, operator.log()


async def test_the_ingress_verifies_service_account_tokens_from_the_api_servers_issuer(
        oidc_cluster: Setup, k8s_client: client.ApiClient, nats_url: str, tmp_path: Path) -> None:
    setup, core = oidc_cluster, client.CoreV1Api(k8s_client)
    ns = setup.namespace
    for account in ("producer", "stranger"):
        core.create_namespaced_service_account(ns, {"metadata": {"name": account}})

    # The contract ConfigMaps carry the API server's issuer (the `iss` of its tokens) and its public keys.
    contract_dir = await mounted_contract(k8s_client, setup, tmp_path / "contract",
                                          lambda r: r.auth is not None and bool(r.auth.policies))
    discovery = core.api_client.call_api(*core.api_client.param_serialize(
        "GET", oidc.DISCOVERY_PATH, header_params={"Accept": "application/json"}))
    discovery.read()
    issuer = yaml.safe_load(discovery.data)["issuer"]
    assert issuer == "https://kubernetes.default.svc.cluster.local"

    port = free_port()
    ingress = Service("ingress", "ingress", ["--host", "127.0.0.1", "--port", str(port), "--contract",
                                             str(contract_dir), "--nats-url", nats_url], tmp_path, port)
    ingress.start()
    try:
        ingress.wait_ready()
        contract = read(contract_dir)
        assert contract.oidc is not None and contract.oidc.issuer == issuer
        assert contract.oidc.jwks["keys"] and all("d" not in k for k in contract.oidc.jwks["keys"])

        url = f"http://127.0.0.1:{port}/{ns}/default"
        own = oidc.Issuer(oidc.SigningKey.generate(), issuer)  # Nerve's embedded issuer, claiming the same iss
        senders = {
            "producer": (token_for(core, ns, "producer", setup.audience), 202),
            "another ServiceAccount": (token_for(core, ns, "stranger", setup.audience), 403),
            "another audience": (token_for(core, ns, "producer", "eventing.knative.dev/broker/x/y"), 401),
            "Nerve's own key": (own.mint(oidc.subject(ns, "producer"), setup.audience)[0], 401),
            "no token": ("", 401),
        }
        headers, data = to_binary(event("k8s-1"))
        answers = {}
        async with aiohttp.ClientSession() as session:
            for who, (token, _) in senders.items():
                auth = {"Authorization": f"Bearer {token}"} if token else {}
                async with session.post(url, data=data, headers={**headers, **auth}) as response:
                    answers[who] = (response.status, await response.text())
        assert {who: status for who, (status, _) in answers.items()} == {
            who: expected for who, (_, expected) in senders.items()}, answers
        assert "not for audience" in answers["another audience"][1]
        assert "does not publish" in answers["Nerve's own key"][1]
    finally:
        ingress.stop()


async def test_the_operator_makes_each_trigger_a_service_account_and_the_dispatcher_gets_tokens_for_it(
        oidc_cluster: Setup, k8s_client: client.ApiClient, kube_apiserver: Path, tmp_path: Path) -> None:
    setup, core = oidc_cluster, client.CoreV1Api(k8s_client)
    ns = setup.namespace
    admin = dynamic.DynamicClient(k8s_client)
    apply(admin, admit({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                        "metadata": {"name": "to-sink", "namespace": ns},
                        "spec": {"broker": "default",
                                 "subscriber": {"uri": "http://sink.example.com", "audience": "the-sink"}}},
                       None, AdmissionSettings()).obj)
    trigger = wait_ready(admin, "Trigger", ns, "to-sink", setup.operator)
    account = f"to-sink{TRIGGER_ACCOUNT_SUFFIX}"
    assert trigger["status"]["auth"]["serviceAccountName"] == account
    created = wait_for("the Trigger's ServiceAccount", lambda: core.read_namespaced_service_account(account, ns))
    owner = created.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("Trigger", "to-sink", trigger["metadata"]["uid"])
    assert created.metadata.labels[LABEL] == "Trigger"

    # The dispatcher, as the chart's dispatcher ServiceAccount (its RBAC: create serviceaccounts/token),
    # gets a token for the Trigger's identity and the subscriber's audience, cached.
    kubeconfig = chart_account(k8s_client, kube_apiserver, setup, "dispatcher", tmp_path / "dispatcher" / "kubeconfig")
    tokens = kubernetes_tokens(str(kubeconfig))
    sub = oidc.subject(ns, account)
    token = await tokens.token(sub, "the-sink")
    assert await tokens.token(sub, "the-sink") == token  # cached until near expiry
    reviewed = review(k8s_client, token, "the-sink")
    assert reviewed.authenticated, reviewed.error
    assert reviewed.user.username == sub
    assert reviewed.audiences == ["the-sink"]
    assert not review(k8s_client, token, "eventing.knative.dev/broker/x/y").authenticated

    # kubectl delete trigger: its ServiceAccount goes too (no garbage collector runs here: the operator does it).
    admin.resources.get(api_version="eventing.knative.dev/v1", kind="Trigger").delete(name="to-sink", namespace=ns)

    def gone() -> bool:
        try:
            core.read_namespaced_service_account(account, ns)
        except client.ApiException as exc:
            return exc.status == 404
        return False
    wait_for("the Trigger's ServiceAccount deleted", gone)


async def test_a_rotated_service_account_key_reaches_the_contract(nats_url: str, tmp_path: Path) -> None:
    """Its own API server, restarted with a new signing key (the old one still verifying), as a cluster
    rotates: the operator's next read of the JWKS puts both keys into the contract, so tokens signed before
    and after verify at the ingress."""
    launcher = script("k8s_apiserver")
    server = launcher.start(tmp_path / "k8s")
    api = config.new_client_from_config(config_file=str(server.kubeconfig))
    operator: Operator | None = None
    try:
        install_crds(api)
        core = client.CoreV1Api(api)
        for name in ("nerve", "ns1"):
            core.create_namespace({"metadata": {"name": name}})
        core.create_namespaced_service_account("ns1", {"metadata": {"name": "producer"}})
        operator = Operator(server.kubeconfig, tmp_path / "op", "nerve", nats_url=nats_url,
                            extra=[*OIDC_ON, "--no-leader-elect", "--oidc-keys-refresh", "1"]).start()
        audience = "eventing.knative.dev/broker/ns1/default"
        apply(dynamic.DynamicClient(api), admit({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                                 "metadata": {"name": "default", "namespace": "ns1"}}, None,
                                                AdmissionSettings(DEFAULT_CLASS_FOR_BACKEND["nats"])).obj)

        def kids(count: int) -> Contract | None:
            contract = asyncio.run(ContractConfigMaps(api, "nerve", "nerve-contract").read())
            keys = contract.oidc.jwks["keys"] if contract and contract.oidc else []
            return contract if len(keys) == count else None
        before = await asyncio.to_thread(wait_for, "the issuer's key in the contract", lambda: kids(1))
        old_token = token_for(core, "ns1", "producer", audience)

        server.stop()
        launcher.rotate_service_account_key(tmp_path / "k8s")
        server = launcher.start(tmp_path / "k8s")
        after = await asyncio.to_thread(wait_for, "both keys in the contract", lambda: kids(2), 60)
        assert after.generation > before.generation
        assert before.oidc is not None and after.oidc is not None
        assert before.oidc.jwks["keys"][0] in after.oidc.jwks["keys"]
        new_token = token_for(core, "ns1", "producer", audience)
        assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
        # What the ingress does with the contract's keys (ingress/auth.py): both tokens verify.
        verifier = oidc.Verifier(after.oidc.issuer, after.oidc.jwks)
        for token in (old_token, new_token):
            assert verifier.verify(token, audience).subject == "system:serviceaccount:ns1:producer"
        with pytest.raises(oidc.TokenRejected):
            oidc.Verifier(before.oidc.issuer, before.oidc.jwks).verify(new_token, audience)
    finally:
        if operator is not None:
            operator.stop()
        api.close()
        server.stop()


async def test_an_event_goes_from_a_service_account_producer_to_a_subscriber_with_the_triggers_token(
        oidc_cluster: Setup, k8s_client: client.ApiClient, kube_apiserver: Path, nats_url: str,
        tmp_path: Path) -> None:
    """The whole path on one cluster's identities: the producer's TokenRequest token admitted by the ingress,
    the event through NATS, and `python -m dispatcher --token-source kubernetes` (as the chart's dispatcher
    ServiceAccount) sending it with a token of the Trigger's ServiceAccount that TokenReview accepts."""
    setup, core = oidc_cluster, client.CoreV1Api(k8s_client)
    ns = setup.namespace
    core.create_namespaced_service_account(ns, {"metadata": {"name": "producer"}})
    sink = Receiver()
    await sink.start()
    admin = dynamic.DynamicClient(k8s_client)
    apply(admin, admit({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                        "metadata": {"name": "to-sink", "namespace": ns},
                        "spec": {"broker": "default", "subscriber": {"uri": sink.url, "audience": "the-sink"}}},
                       None, AdmissionSettings()).obj)
    contract_dir = await mounted_contract(k8s_client, setup, tmp_path / "contract",
                                          lambda r: bool(r.egresses) and r.egresses[0].auth is not None)
    kubeconfig = chart_account(k8s_client, kube_apiserver, setup, "dispatcher", tmp_path / "d" / "kubeconfig")
    common = ["--host", "127.0.0.1", "--contract", str(contract_dir), "--nats-url", nats_url]
    ingress_port, dispatcher_port = free_port(), free_port()
    ingress = Service("ingress", "ingress", [*common, "--port", str(ingress_port)], tmp_path, ingress_port)
    dispatcher = Service("dispatcher", "dispatcher", [*common, "--port", str(dispatcher_port), "--token-source",
                                                      "kubernetes", "--token-kubeconfig", str(kubeconfig)],
                         tmp_path, dispatcher_port)
    try:
        for service in (ingress, dispatcher):
            service.start()
        for service in (ingress, dispatcher):
            service.wait_ready()
        sent = event("k8s-path-1")
        headers, data = to_binary(sent)
        token = token_for(core, ns, "producer", setup.audience)
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{ingress_port}/{ns}/default", data=data,
                headers={**headers, "Authorization": f"Bearer {token}"}) as response:
            assert response.status == 202, await response.text()
        try:
            await sink.wait_for(1, timeout=30)
        except TimeoutError:
            raise AssertionError(f"nothing arrived:\n{dispatcher.log.read_text()[-3000:]}") from None
        received = sink.received[0]
        assert received.event.id == sent.id and received.body == data
        scheme, _, sent_token = received.headers["Authorization"].partition(" ")
        assert scheme == "Bearer"
        reviewed = review(k8s_client, sent_token, "the-sink")
        assert reviewed.authenticated, reviewed.error
        assert reviewed.user.username == oidc.identity("eventing.knative.dev", "Trigger", ns, "to-sink")
    finally:
        for service in (dispatcher, ingress):
            service.stop()
        await sink.stop()
