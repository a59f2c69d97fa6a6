"""Operator benchmark: N Triggers applied to a real kube-apiserver, reconciled by `python -m control --store
kubernetes` (NATS backend), until every one is Ready.

The API server (scripts/k8s_apiserver.py) and nats-server (scripts/nats_local.py) run on loopback; the
operator is its own process (measured with psutil). One Broker is applied and Ready first; then the N
Triggers are created one by one (each defaulted as the mutating webhook would, with Nerve's admission), and
the Triggers are listed every 0.1 s until all are Ready. It prints:

- how long the creates took, and from the first create until all N were Ready;
- per Trigger, creation to first seen Ready: p50 / p99 / max (0.1 s polling);
- the operator's CPU % (of one core) and RSS while reconciling, and CPU % over --idle seconds after,
  when nothing changes (a watch loop that reconciled its own writes forever would show here);
- the contract ConfigMap's size for N Triggers.

    .venv/bin/python bench/bench_operator.py                  # 500 Triggers
    .venv/bin/python bench/bench_operator.py --triggers 100 --idle 5
"""

from __future__ import annotations

import argparse
import base64
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import yaml
from kubernetes import client, config, dynamic

from control.api.admission import AdmissionSettings, admit
from control.api.broker import DEFAULT_CLASS_FOR_BACKEND

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import k8s_apiserver  # noqa: E402
import nats_local  # noqa: E402
from _server import free_port  # noqa: E402

NAMESPACE = "bench"
HOME = "nerve"


def ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def install_crds(api: client.ApiClient) -> None:
    dyn = dynamic.DynamicClient(api)
    crds = [doc for path in sorted((ROOT / "helm" / "nerve" / "crds").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]
    resource = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    for crd in crds:
        # No conversion webhook runs here: every object is written in its storage version.
        crd = {**crd, "spec": {**crd["spec"], "conversion": {"strategy": "None"}}}
        resource.create(body=crd)
    extensions = client.ApiextensionsV1Api(api)
    for crd in crds:
        while not any(c.type == "Established" and c.status == "True" for c in
                      extensions.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions or []):
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=500)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds measured after all are Ready")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nerve-bench-operator-"))
    nats = nats_local.start(work / "nats")
    apiserver = k8s_apiserver.start(work / "k8s")
    operator: subprocess.Popen[bytes] | None = None
    try:
        api = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
        install_crds(api)
        core = client.CoreV1Api(api)
        for name in (HOME, NAMESPACE):
            core.create_namespace({"metadata": {"name": name}})
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NERVE_")}
        log = (work / "operator.log").open("ab")
        operator = subprocess.Popen(
            [sys.executable, "-m", "control", "--store", "kubernetes", "--kubeconfig", str(apiserver.kubeconfig),
             "--namespace", HOME, "--contract-configmap", "nerve-contract", "--port", str(port),
             "--state-dir", str(work / "state"), "--backend", "nats", "--nats-url", nats.url,
             "--ingress-base-url", "http://nerve-ingress.nerve.svc.cluster.local"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        process = psutil.Process(operator.pid)
        dyn = dynamic.DynamicClient(api)
        defaults = AdmissionSettings(DEFAULT_CLASS_FOR_BACKEND["nats"])
        brokers = dyn.resources.get(api_version="eventing.knative.dev/v1", kind="Broker")
        triggers = dyn.resources.get(api_version="eventing.knative.dev/v1", kind="Trigger")
        brokers.create(body=admit({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                   "metadata": {"name": "default", "namespace": NAMESPACE}}, None, defaults).obj,
                       namespace=NAMESPACE)
        while not ready(brokers.get(name="default", namespace=NAMESPACE).to_dict()):
            time.sleep(0.1)

        template = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"namespace": NAMESPACE},
                    "spec": {"broker": "default", "filter": {"attributes": {"type": "greeting"}},
                             "subscriber": {"uri": "http://display.bench.svc.cluster.local/"}}}
        process.cpu_percent()
        cpu_start = sum(process.cpu_times()[:2])
        started = time.monotonic()
        created: dict[str, float] = {}
        for i in range(args.triggers):
            manifest = copy.deepcopy(template)
            manifest["metadata"]["name"] = f"t-{i}"
            manifest["spec"]["filter"]["attributes"]["type"] = f"type-{i}"
            triggers.create(body=admit(manifest, None, defaults).obj, namespace=NAMESPACE)
            created[f"t-{i}"] = time.monotonic()
        creates_took = time.monotonic() - started
        readies: dict[str, float] = {}
        rss = 0
        while len(readies) < args.triggers:
            now = time.monotonic()
            for item in triggers.get(namespace=NAMESPACE).to_dict()["items"]:
                name = item["metadata"]["name"]
                if name not in readies and ready(item):
                    readies[name] = now
            rss = max(rss, process.memory_info().rss)
            time.sleep(0.1)
        all_ready = time.monotonic() - started
        busy_cpu = (sum(process.cpu_times()[:2]) - cpu_start) / all_ready * 100
        idle_start = sum(process.cpu_times()[:2])
        time.sleep(args.idle)
        idle_cpu = (sum(process.cpu_times()[:2]) - idle_start) / args.idle * 100
        latencies = sorted(readies[n] - created[n] for n in readies)
        head = core.read_namespaced_config_map("nerve-contract", HOME)
        gzipped = sum(len(base64.b64decode(v)) for v in (head.binary_data or {}).values())
        print(f"load (uptime): {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at {datetime.now():%H:%M:%S}")
        print(f"{args.triggers} Triggers: created in {creates_took:.2f}s, all Ready {all_ready:.2f}s after the first "
              f"create")
        print(f"create -> Ready: p50 {statistics.median(latencies):.2f}s  "
              f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.2f}s  max {latencies[-1]:.2f}s")
        print(f"operator while reconciling: CPU {busy_cpu:.0f}% of a core, RSS {rss / 2**20:.0f} MiB; "
              f"idle for {args.idle:.0f}s after: CPU {idle_cpu:.1f}%")
        print(f"contract ConfigMap: {gzipped / 1024:.1f} KiB gzipped for {args.triggers} Triggers")
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(20)
            except subprocess.TimeoutExpired:
                operator.kill()
        apiserver.stop()
        nats.stop()


if __name__ == "__main__":
    main()
