"""The chart's sources Deployment (helm/nerve): where PingSource keeps its ticks, and with
`sources.watch=kubernetes` what ApiServerSources need of the cluster (a mounted token, the right to request
ServiceAccount tokens and nothing else), checked with SubjectAccessReviews on the real API server."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from kubernetes import client, dynamic

from core.settings import parse
from sources.__main__ import command_line
from tests.kubernetes.support import apply, render


def _sources(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [dep] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "nerve-sources"]
    return dep


def _env(dep: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}


def test_pingsource_ticks_live_on_the_pods_tmp_volume() -> None:
    dep = _sources(render("control.store=sqlite"))
    pod = dep["spec"]["template"]["spec"]
    env = _env(dep)
    assert env["NERVE_STATE_DIR"] == "/tmp/nerve-state"
    # On an emptyDir (the root filesystem is read-only): kept across container restarts, not across Pods.
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if env["NERVE_STATE_DIR"].startswith(m["mountPath"])]
    assert next(v for v in pod["volumes"] if v["name"] == mount["name"]) == {"name": mount["name"], "emptyDir": {}}
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert dep["spec"]["replicas"] == 1
    # By default ApiServerSources watch nothing, and the sources Pod gets no token.
    assert env["NERVE_WATCH"] == "none" and pod["automountServiceAccountToken"] is False
    roles = {d["metadata"]["name"] for d in render("control.store=sqlite") if d["kind"] == "ClusterRole"}
    assert not roles & {"nerve-sources", "nerve-control-sources"}


def _can(api: client.ApiClient, namespace: str, verb: str, resource: str, subresource: str = "",
         group: str = "", account: str = "nerve-sources") -> bool:
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{namespace}:{account}",
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, subresource=subresource or None,
                                                        group=group, namespace="anywhere")))
    return bool(client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed)


def test_watch_kubernetes_gives_sources_a_token_and_only_token_requests(k8s_client: client.ApiClient) -> None:
    namespace = f"chart-src-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(k8s_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    docs = render("sources.watch=kubernetes", "control.store=kubernetes", namespace=namespace, release="nerve")
    dep = _sources(docs)
    assert dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    env = _env(dep)
    assert env["NERVE_WATCH"] == "kubernetes"
    parsed = parse(argparse.ArgumentParser(prog="sources"), command_line(), [], environ=env)
    assert (parsed["watch"], parsed["kubeconfig"]) == ("kubernetes", "")  # "": the Pod's own account

    dyn = dynamic.DynamicClient(k8s_client)
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            apply(dyn, doc)
    assert _can(k8s_client, namespace, "create", "serviceaccounts", "token")
    assert not _can(k8s_client, namespace, "get", "serviceaccounts")
    assert not _can(k8s_client, namespace, "list", "events")
    assert not _can(k8s_client, namespace, "get", "secrets")

    # Control as the operator: what its source reconcilers write, and no deletes.
    control = {"account": "nerve-control"}
    assert _can(k8s_client, namespace, "create", "deployments", group="apps", **control)
    assert _can(k8s_client, namespace, "update", "cronjobs", group="batch", **control)
    assert _can(k8s_client, namespace, "create", "sinkbindings", group="sources.knative.dev", **control)
    assert _can(k8s_client, namespace, "create", "subjectaccessreviews", group="authorization.k8s.io", **control)
    assert not _can(k8s_client, namespace, "delete", "deployments", group="apps", **control)
    assert not _can(k8s_client, namespace, "update", "jobs", group="batch", **control)
