"""What the Kubernetes tests share: the built helm, the chart rendered, manifests applied with the official
client's dynamic API, and the CRDs installed and Established, their conversion served.

The CRDs of kinds with older versions convert through the operator's webhook (control/crds.py). So that
every test that installs them can write older versions, `install_crds` starts the operator's webhooks
(control/operator/webhooks.py, the same code `python -m control --store kubernetes` serves) once per test
process, in a thread on 127.0.0.1 over TLS with a test CA, and points the CRDs' conversion at it with
control/operator/conversion.py, as the operator points them at its Service."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from control.api.admission import AdmissionSettings
from control.operator.conversion import patch_conversions
from control.operator.webhooks import Webhooks, server_ssl
from tests.support.launchers import script

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "nerve"
CRDS = CHART / "crds"
GETTING_STARTED = ROOT / "examples" / "getting-started"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the helm scripts/k8s_tools.py built; the test fails, naming the tool, when it is missing."""
    tools = script("k8s_tools")
    try:
        binary = tools.binary("helm")
    except tools.ToolsError as exc:
        raise AssertionError(str(exc)) from exc
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def render(*values: str, namespace: str = "nerve", release: str = "nerve", crds: bool = False) -> list[dict[str, Any]]:
    """`helm template` of the chart with `--set` values: the documents it renders."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    if crds:
        args.append("--include-crds")
    for value in values:
        args += ["--set", value]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def resource(dyn: dynamic.DynamicClient, manifest: dict[str, Any]) -> Any:
    return dyn.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])


def apply(dyn: dynamic.DynamicClient, manifest: dict[str, Any], *, dry_run: bool = False) -> Any:
    """Create, or replace when it exists: `kubectl apply` for a test (no three-way merge needed)."""
    api = resource(dyn, manifest)
    namespace = manifest["metadata"].get("namespace") if api.namespaced else None
    extra = {"dry_run": "All"} if dry_run else {}
    try:
        return api.create(body=manifest, namespace=namespace, **extra)
    except ApiException as exc:
        if exc.status != 409:
            raise
    current = api.get(name=manifest["metadata"]["name"], namespace=namespace)
    body = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": current.metadata.resourceVersion}}
    return api.replace(body=body, namespace=namespace, **extra)


def install_crds(api_client: client.ApiClient, timeout: float = 60) -> list[dict[str, Any]]:
    """Every CRD of the chart, applied and Established (their kinds served) before this returns."""
    dyn = dynamic.DynamicClient(api_client)
    crds = documents(sorted(CRDS.glob("*.yaml")))
    for crd in crds:
        apply(dyn, crd)
    extensions = client.ApiextensionsV1Api(api_client)
    deadline = time.monotonic() + timeout
    for crd in crds:
        while True:
            conditions = extensions.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            assert time.monotonic() < deadline, f"{crd['metadata']['name']} not Established: {conditions}"
            time.sleep(0.2)
    dyn.resources.invalidate_cache()
    patch_conversions(api_client, conversion_webhook())
    return crds


def make_cert(directory: Path) -> Path:
    """A CA and a serving certificate for 127.0.0.1 (tls.crt, tls.key, ca.crt in `directory`)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "tls.crt").exists():
        return directory
    (directory / "server.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                                          "authorityKeyIdentifier=keyid,issuer\nsubjectAltName=IP:127.0.0.1\n"
                                          "extendedKeyUsage=serverAuth\n")
    for step in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
         "-subj", "/CN=nerve-webhook-test-ca"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tls.crt",
         "-days", "30", "-extfile", "server.ext"],
    ):
        subprocess.run(["openssl", *step], cwd=directory, check=True, capture_output=True, timeout=60)
    return directory


_conversion: dict[str, Any] = {}


def conversion_webhook() -> dict[str, Any]:
    """The clientConfig of this process's webhook server (started on first use; a daemon thread, so it ends
    with the test process)."""
    if _conversion:
        return _conversion
    certs = make_cert(Path(tempfile.mkdtemp(prefix="nerve-conversion-")))
    started = threading.Event()
    port: list[int] = []

    def serve() -> None:
        async def main() -> None:
            runner = web.AppRunner(Webhooks(AdmissionSettings()).app(), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl(certs))
            await site.start()
            port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
            started.set()
            await asyncio.Event().wait()
        asyncio.run(main())

    threading.Thread(target=serve, name="conversion-webhook", daemon=True).start()
    assert started.wait(30), "the conversion webhook did not start"
    _conversion.update({"url": f"https://127.0.0.1:{port[0]}/convert",
                        "caBundle": base64.b64encode((certs / "ca.crt").read_bytes()).decode()})
    return _conversion


def get_json(api_client: client.ApiClient, path: str, accept: str = "application/json") -> dict[str, Any]:
    """A GET of any API path with the client's credentials, its JSON body decoded."""
    request = api_client.param_serialize("GET", path, header_params={"Accept": accept})
    response = api_client.call_api(*request)
    response.read()
    data: dict[str, Any] = json.loads(response.data)
    return data


def table(api_client: client.ApiClient, path: str) -> dict[str, Any]:
    """What `kubectl get` asks for: the server's Table of a list (its columns from the CRD)."""
    return get_json(api_client, path, "application/json;as=Table;v=v1;g=meta.k8s.io")
