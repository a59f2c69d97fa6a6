"""The Helm chart, with the real helm binary: it lints, renders what each part needs, every rendered
manifest is valid Kubernetes (offline schemas, then a server-side dry run in the real kube-apiserver), and
the RBAC it grants is least privilege (SubjectAccessReviews against the installed Roles)."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client, dynamic

from control.__main__ import command_line as control_settings
from control.api import kinds
from control.crds import crd_kinds
from control.operator.webhooks import configurations
from core.settings import parse
from dispatcher.__main__ import command_line as dispatcher_settings
from ingress.__main__ import command_line as ingress_settings
from sources.__main__ import command_line as sources_settings
from tests.kubernetes.support import CHART, apply, helm, install_crds, render

ROLES = ("control", "ingress", "dispatcher", "sources")
EVERYTHING_ON = ("dispatcher.autoscaling.enabled=true", "serviceMonitor.enabled=true",
                 "control.persistence.enabled=true", "token.value=s3cret")


def _by(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_helm_lint_passes() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    result = helm("lint", "--strict", str(CHART), *[a for v in EVERYTHING_ON for a in ("--set", v)],
                  "--set", "contract.from=configmap")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", [(), EVERYTHING_ON, ("contract.from=configmap",)], ids=["defaults", "all-on", "cm"])
def test_every_rendered_manifest_is_valid_kubernetes(values: tuple[str, ...]) -> None:
    docs = render(*values, crds=True)
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # the Prometheus Operator's kind: checked against the Services below
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_each_part_runs_its_entry_point_with_probes_and_its_own_account() -> None:
    docs = render()
    deployments = _by(docs, "Deployment")
    accounts = _by(docs, "ServiceAccount")
    services = _by(docs, "Service")
    assert set(deployments) == {f"nerve-{role}" for role in ROLES}
    for role in ROLES:
        pod = deployments[f"nerve-{role}"]["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert container["args"] == [role]
        assert container["image"] == "localhost/nerve:0.1.0"
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert pod["spec"]["serviceAccountName"] == f"nerve-{role}"
        assert f"nerve-{role}" in accounts
        # Only control talks to the Kubernetes API, the sources part for ApiServerSources (control runs as the
        # operator by default, so ApiServerSources watch this cluster), and the senders: TokenRequests for OIDC
        # (core/kube_tokens.py).
        assert pod["spec"]["automountServiceAccountToken"] is (role in ("control", "dispatcher", "sources"))
        service = services[f"nerve-{role}"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    control = _env(deployments["nerve-control"])
    assert control["NERVE_INGRESS_BASE_URL"] == "http://nerve-ingress.nerve.svc.cluster.local"
    assert control["KAFKA_BOOTSTRAP_SERVERS"] == "kafka.kafka.svc.cluster.local:9092"
    assert "nerve-control.nerve.svc.cluster.local" in control["NERVE_ALLOWED_HOSTS"].split(",")
    for role in ("ingress", "dispatcher", "sources"):
        env = _env(deployments[f"nerve-{role}"])
        assert env["NERVE_CONTRACT_FROM"] == "control"
        assert env["NERVE_CONTROL_URL"] == "http://nerve-control.nerve.svc.cluster.local:8081"
        assert env["NERVE_CONTROL_TOKEN"] == control["NERVE_TOKEN"] == {
            "secretKeyRef": {"name": "nerve-token", "key": "token"}}
    assert services["nerve-ingress"]["spec"]["ports"][0]["port"] == 80


def test_the_contract_configmaps_are_written_by_control_and_mounted_into_the_data_plane() -> None:
    docs = render("contract.from=configmap", "contract.configMapParts=3")
    assert "contract.json" in _by(docs, "ConfigMap")["nerve-contract"]["data"]
    assert _env(_by(docs, "Deployment")["nerve-control"])["NERVE_CONTRACT_CONFIGMAP"] == "nerve-contract"
    for role in ("ingress", "dispatcher", "sources"):
        deployment = _by(docs, "Deployment")[f"nerve-{role}"]
        pod = deployment["spec"]["template"]["spec"]
        # The first ConfigMap and the parts of a large contract, which exist only when it is large.
        volume = next(v for v in pod["volumes"] if v["name"] == "contract")
        assert volume["projected"]["sources"] == [
            {"configMap": {"name": "nerve-contract"}},
            *({"configMap": {"name": f"nerve-contract-{i}", "optional": True}} for i in (1, 2, 3))]
        assert _env(deployment)["NERVE_CONTRACT"] == "/etc/nerve/contract"
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["contract"]["mountPath"] == "/etc/nerve/contract"


def test_control_runs_as_the_operator_with_leader_election_and_webhooks() -> None:
    docs = render()
    control = _by(docs, "Deployment")["nerve-control"]
    env = _env(control)
    assert env["NERVE_STORE"] == "kubernetes"
    assert env["NERVE_LEASE_NAME"] == "nerve-control"
    assert control["spec"]["replicas"] == 2 and "strategy" not in control["spec"]
    assert env["NERVE_WEBHOOK_PORT"] == "8443"
    assert env["NERVE_WEBHOOK_SERVICE"] == "nerve-webhook"  # the CRDs' conversion is pointed at it
    pod = control["spec"]["template"]["spec"]
    assert {"name": "webhook-tls", "secret": {"secretName": "nerve-webhook-tls"}} in pod["volumes"]
    secret = _by(docs, "Secret")["nerve-webhook-tls"]
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    service = _by(docs, "Service")["nerve-webhook"]
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    # The chart's webhooks are the ones control/operator/webhooks.py describes, calling the Service.
    expected = {c["kind"]: c["webhooks"] for c in configurations(
        lambda path: {"service": {"name": "nerve-webhook", "namespace": "nerve", "path": path, "port": 443},
                      "caBundle": secret["data"]["ca.crt"]}, "nerve")}
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        [rendered] = _by(docs, kind).values()
        assert rendered["webhooks"] == expected[kind]
    # The SinkBinding webhook for Pods and Jobs never blocks them, and skips kube-system and Nerve's namespace.
    [mutating] = _by(docs, "MutatingWebhookConfiguration").values()
    assert mutating["webhooks"][1]["failurePolicy"] == "Ignore"
    assert mutating["webhooks"][1]["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "nerve"]

    # Every Broker class and channel kind by default; next to Knative only Nerve's own.
    assert "NERVE_BROKER_CLASSES" not in env and "NERVE_CHANNEL_KINDS" not in env
    coexisting = _env(_by(render("knative.coexist=true", "backend.default=nats"), "Deployment")["nerve-control"])
    assert (coexisting["NERVE_BROKER_CLASSES"], coexisting["NERVE_CHANNEL_KINDS"]) == (
        "NatsJetStreamBroker", "NatsJetStreamChannel")
    chosen = _env(_by(render("knative.coexist=true", "knative.brokerClasses=Kafka"), "Deployment")["nerve-control"])
    assert chosen["NERVE_BROKER_CLASSES"] == "Kafka"

    # The SQLite store: one replica, never two on one store, no webhooks.
    docs = render("control.store=sqlite", "control.persistence.enabled=true")
    control = _by(docs, "Deployment")["nerve-control"]
    assert _env(control)["NERVE_STORE"] == "sqlite"
    assert control["spec"]["replicas"] == 1 and control["spec"]["strategy"] == {"type": "Recreate"}
    assert {"name": "state", "persistentVolumeClaim": {"claimName": "nerve-control-state"}} in control["spec"][
        "template"]["spec"]["volumes"]
    assert not _by(docs, "ValidatingWebhookConfiguration")


def test_a_bad_contract_source_is_refused_by_name() -> None:
    result = helm("template", "nerve", str(CHART), "--set", "contract.from=carrier-pigeon")
    assert result.returncode != 0
    assert 'contract.from must be control or configmap, not "carrier-pigeon"' in result.stderr


def test_optional_parts_render_when_enabled() -> None:
    defaults = render()
    assert not _by(defaults, "HorizontalPodAutoscaler") and not _by(defaults, "ServiceMonitor")
    assert set(_by(defaults, "PodDisruptionBudget")) == {f"nerve-{role}" for role in ROLES}
    docs = render(*EVERYTHING_ON)
    hpa = _by(docs, "HorizontalPodAutoscaler")["nerve-dispatcher"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nerve-dispatcher"}
    assert "replicas" not in _by(docs, "Deployment")["nerve-dispatcher"]["spec"]  # the HPA owns it
    monitor = _by(docs, "ServiceMonitor")["nerve"]
    excluded = {e["key"]: e["values"] for e in monitor["spec"]["selector"]["matchExpressions"]}
    assert excluded == {"nerve.dev/serves": ["webhooks"]}
    scraped = [service for service in _by(docs, "Service").values()
               if service["metadata"]["labels"].get("nerve.dev/serves") != "webhooks"]
    assert {s["metadata"]["name"] for s in scraped} == {f"nerve-{role}" for role in ROLES}
    for service in scraped:
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert service["spec"]["ports"][0]["name"] == monitor["spec"]["endpoints"][0]["port"]


def test_the_chart_is_accepted_by_the_api_server(k8s_client: client.ApiClient, kube_apiserver: Path) -> None:
    """Every rendered manifest (everything on) through a server-side dry run with the official client, then
    `helm install` for real, as a user runs it; no kubelet runs, so the Pods never start."""
    install_crds(k8s_client)
    dyn = dynamic.DynamicClient(k8s_client)
    namespace = f"nerve-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(k8s_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    for doc in render(*EVERYTHING_ON, "contract.from=configmap", namespace=namespace, release=namespace):
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
            apply(dyn, doc, dry_run=True)

    # Installed without its webhooks: no kubelet runs, so no control Pod would answer them, and with
    # failurePolicy Fail they would refuse every Knative object in this shared API server (the operator's
    # webhooks are tested with the operator running, tests/kubernetes/test_operator.py).
    kubeconfig = ("--kubeconfig", str(kube_apiserver), "--namespace", namespace, "--set", "webhooks.enabled=false")
    installed = helm("install", namespace, str(CHART), *kubeconfig)
    assert installed.returncode == 0, installed.stderr
    # NOTES.txt: how to POST to a Broker at the ingress Service's address.
    assert f"http://{namespace}-ingress.{namespace}.svc.cluster.local/event-example/default" in installed.stdout
    assert "Ce-Type: greeting" in installed.stdout
    deployments = client.AppsV1Api(k8s_client).list_namespaced_deployment(namespace).items
    assert sorted(d.metadata.name for d in deployments) == sorted(f"{namespace}-{role}" for role in ROLES)

    core = client.CoreV1Api(k8s_client)
    token = core.read_namespaced_secret(f"{namespace}-token", namespace).data["token"]
    upgraded = helm("upgrade", namespace, str(CHART), *kubeconfig, "--set", "ingress.replicas=3")
    assert upgraded.returncode == 0, upgraded.stderr
    # The generated control token survives an upgrade: the data plane keeps authenticating.
    assert core.read_namespaced_secret(f"{namespace}-token", namespace).data["token"] == token
    ingress = client.AppsV1Api(k8s_client).read_namespaced_deployment(f"{namespace}-ingress", namespace)
    assert ingress.spec.replicas == 3


def _can(k8s_client: client.ApiClient, account: str, namespace: str, verb: str, resource: str,
         group: str = "", resource_namespace: str = "event-example", name: str = "") -> bool:
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{namespace}:{account}",
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group,
                                                        namespace=resource_namespace, name=name or None)))
    return bool(client.AuthorizationV1Api(k8s_client).create_subject_access_review(review).status.allowed)


def test_rbac_is_least_privilege(k8s_client: client.ApiClient) -> None:
    dyn = dynamic.DynamicClient(k8s_client)
    namespace = f"rbac-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(k8s_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    for doc in render(namespace=namespace, release="nerve"):
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            apply(dyn, doc)
    control = "nerve-control"
    assert _can(k8s_client, control, namespace, "watch", "triggers", "eventing.knative.dev")
    assert _can(k8s_client, control, namespace, "update", "brokers/status", "eventing.knative.dev")
    assert _can(k8s_client, control, namespace, "list", "kafkasources", "sources.knative.dev")
    assert _can(k8s_client, control, namespace, "update", "configmaps", resource_namespace=namespace,
                name="nerve-contract")
    assert not _can(k8s_client, control, namespace, "update", "configmaps", resource_namespace=namespace,
                    name="someone-elses")
    for i in (1, 8):  # the parts of a large contract
        assert _can(k8s_client, control, namespace, "delete", "configmaps", resource_namespace=namespace,
                    name=f"nerve-contract-{i}")
    assert _can(k8s_client, control, namespace, "create", "configmaps", resource_namespace=namespace)
    assert not _can(k8s_client, control, namespace, "create", "configmaps")  # not in users' namespaces
    assert _can(k8s_client, control, namespace, "update", "leases", "coordination.k8s.io",
                resource_namespace=namespace, name="nerve-control")
    assert not _can(k8s_client, control, namespace, "update", "leases", "coordination.k8s.io",
                    resource_namespace=namespace, name="kube-scheduler")
    # Every kind the reconcilers read that has no CRD of Nerve's: read, never written, but the workloads a
    # SinkBinding binds (their pod templates patched) and a ContainerSource's Deployment (created).
    written = {"Deployment", "CronJob"}
    for kind in kinds.KINDS:
        if kind not in crd_kinds():
            group = kind.group
            assert _can(k8s_client, control, namespace, "watch", kind.plural, group), kind.kind
            assert _can(k8s_client, control, namespace, "update", kind.plural, group) == (kind.kind in written), \
                kind.kind
    assert _can(k8s_client, control, namespace, "create", "deployments", "apps")
    assert not _can(k8s_client, control, namespace, "delete", "deployments", "apps")
    assert not _can(k8s_client, control, namespace, "create", "cronjobs", "batch")
    # The CRDs with older versions get their conversion pointed at the webhook; no other CRD is touched.
    assert _can(k8s_client, control, namespace, "patch", "customresourcedefinitions", "apiextensions.k8s.io",
                resource_namespace="", name="pingsources.sources.knative.dev")
    assert not _can(k8s_client, control, namespace, "patch", "customresourcedefinitions", "apiextensions.k8s.io",
                    resource_namespace="", name="brokers.eventing.knative.dev")
    # Secrets: read (the Kafka and NATS credentials Brokers and KafkaSources name), never written.
    assert _can(k8s_client, control, namespace, "get", "secrets")
    assert not _can(k8s_client, control, namespace, "update", "secrets")
    assert not _can(k8s_client, control, namespace, "delete", "triggers", "eventing.knative.dev")
    # authentication-oidc: control makes the senders' OIDC ServiceAccounts and reads the API server's issuer;
    # the dispatcher and sources get tokens for them (TokenRequest), the ingress nothing.
    assert _can(k8s_client, control, namespace, "create", "serviceaccounts")
    assert _can(k8s_client, control, namespace, "delete", "serviceaccounts")
    for path in ("/.well-known/openid-configuration", "/openid/v1/jwks"):
        review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:{control}",
            non_resource_attributes=client.V1NonResourceAttributes(path=path, verb="get")))
        assert client.AuthorizationV1Api(k8s_client).create_subject_access_review(review).status.allowed, path
    for role in ("dispatcher", "sources"):
        assert _can(k8s_client, f"nerve-{role}", namespace, "create", "serviceaccounts/token")
        assert not _can(k8s_client, f"nerve-{role}", namespace, "get", "serviceaccounts")
    assert not _can(k8s_client, "nerve-ingress", namespace, "create", "serviceaccounts/token")
    for role in ("ingress", "dispatcher", "sources"):
        assert not _can(k8s_client, f"nerve-{role}", namespace, "get", "triggers", "eventing.knative.dev")
        assert not _can(k8s_client, f"nerve-{role}", namespace, "get", "secrets")
        assert not _can(k8s_client, f"nerve-{role}", namespace, "get", "configmaps", resource_namespace=namespace)


@pytest.mark.parametrize("values", [(), ("contract.from=configmap", "backend.default=nats")], ids=["defaults", "cm"])
def test_each_part_accepts_the_environment_the_chart_gives_it(values: tuple[str, ...]) -> None:
    """Every variable a Deployment sets is a setting of its part (none silently ignored), and the part's own
    parser (exit 2 on a bad value) accepts them all."""
    parts = {"control": control_settings, "ingress": ingress_settings, "dispatcher": dispatcher_settings,
             "sources": sources_settings}
    deployments = _by(render(*values), "Deployment")
    for role, command_line in parts.items():
        env = {name: value if isinstance(value, str) else "a-token"
               for name, value in _env(deployments[f"nerve-{role}"]).items()}
        known = {s.env for s in command_line()}
        assert set(env) - known == set(), f"{role}: variables no setting reads"
        parsed = parse(argparse.ArgumentParser(prog=role), command_line(), [], environ=env)
        assert parsed["host"] == "0.0.0.0"
        assert parsed["port"] == deployments[f"nerve-{role}"]["spec"]["template"]["spec"]["containers"][0][
            "ports"][0]["containerPort"]
        if role != "control":
            assert parsed["contract_from"] == ("file" if values else "control")
