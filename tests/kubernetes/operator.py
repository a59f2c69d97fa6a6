"""The operator as a process for the tests: `python -m control --store kubernetes` against the session's API
server, its admission webhooks on 127.0.0.1 over TLS with a certificate made here, and the webhook
configurations pointing the API server at it (`clientConfig.url`: no kubelet runs, so there is no Pod
behind a Service to call)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from control.operator.webhooks import configurations
from tests.kubernetes.support import ROOT, apply, make_cert, render

__all__ = ["make_cert"]

INGRESS = "http://nerve-ingress.nerve.svc.cluster.local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def install_webhooks(api_client: client.ApiClient, certs: Path, port: int) -> None:
    """The operator's webhook configurations (control/operator/webhooks.py `configurations`), calling it at
    https://127.0.0.1:<port> with the test CA as the caBundle."""
    bundle = base64.b64encode((certs / "ca.crt").read_bytes()).decode()
    dyn = dynamic.DynamicClient(api_client)
    for manifest in configurations(lambda path: {"url": f"https://127.0.0.1:{port}{path}", "caBundle": bundle}):
        apply(dyn, manifest)


def as_chart_account(api_client: client.ApiClient, kubeconfig: Path, namespace: str, release: str,
                     directory: Path) -> Path:
    """A kubeconfig for the chart's control ServiceAccount (its RBAC, helm/nerve/templates/rbac.yaml, installed
    in `namespace` as release `release`), with a token the API server issues: the operator then has the
    rights a user's cluster gives it, no more."""
    dyn = dynamic.DynamicClient(api_client)
    for doc in render(namespace=namespace, release=release):
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            apply(dyn, doc)
    account = f"{release}-control"
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    admin = yaml.safe_load(kubeconfig.read_text())
    admin["users"] = [{"name": account, "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = account
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(admin))
    return path


def remove_webhooks(api_client: client.ApiClient) -> None:
    api = client.AdmissionregistrationV1Api(api_client)
    for call, name in ((api.delete_mutating_webhook_configuration, "defaulting.nerve.knative.dev"),
                       (api.delete_validating_webhook_configuration, "validation.nerve.knative.dev")):
        try:
            call(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def delete_namespaces(core: client.CoreV1Api, *names: str) -> None:
    """A test's namespaces, each gone already or deleted now (no controller-manager empties them)."""
    for name in names:
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


@dataclass
class Operator:
    """One `python -m control --store kubernetes` process."""

    kubeconfig: Path
    state: Path
    namespace: str
    kafka_bootstrap: str = ""
    nats_url: str = ""
    webhook_port: int = 0
    certs: Path | None = None
    lease_duration: float = 3.0
    lease_name: str = "nerve-control"
    contract_configmap: str = "nerve-contract"
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        self.state.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "control", "--store", "kubernetes", "--kubeconfig", str(self.kubeconfig),
                "--namespace", self.namespace, "--contract-configmap", self.contract_configmap,
                "--lease-name", self.lease_name,
                "--host", "127.0.0.1", "--port", str(self.port), "--state-dir", str(self.state),
                "--ingress-base-url", INGRESS, "--service-url-template", "http://{name}.{namespace}.svc.cluster.local",
                "--lease-duration", str(self.lease_duration), "--lease-renew-every", "0.5", "--resync-seconds", "30",
                "--backend", "kafka" if self.kafka_bootstrap else "nats",
                "--kafka-bootstrap", self.kafka_bootstrap, "--nats-url", self.nats_url, *self.extra]
        if self.webhook_port:
            assert self.certs is not None
            args += ["--webhook-port", str(self.webhook_port), "--webhook-cert-dir", str(self.certs)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("NERVE_")}
        log = (self.state / "operator.log").open("ab")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_serving()
        return self

    def wait_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            assert self.process.poll() is None, f"the operator exited {self.process.returncode}:\n{self.log()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    pass
                if self.webhook_port:
                    context = ssl.create_default_context(cafile=str(self.certs / "ca.crt") if self.certs else None)
                    with socket.create_connection(("127.0.0.1", self.webhook_port), timeout=2) as raw, \
                            context.wrap_socket(raw, server_hostname="127.0.0.1"):
                        pass
                return
            except OSError:
                assert time.monotonic() < deadline, f"the operator does not answer:\n{self.log()}"
                time.sleep(0.2)

    def log(self) -> str:
        path = self.state / "operator.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def kill(self) -> None:
        """kill -9: no release of the Lease, no clean-up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def wait_for(what: str, check: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiException as exc:
            last = exc
            if exc.status != 404:
                raise
        if last and not isinstance(last, ApiException):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
