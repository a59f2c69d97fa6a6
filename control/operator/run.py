"""`python -m control --store kubernetes`: control as the operator (control/operator/__init__.py).

Every replica serves the control API (reads, `nerve apply` writes into the API server, and the contract's
long poll: a standby answers it with the leader's contract, read from the contract ConfigMaps) and, with
`--webhook-port`, the admission webhooks; only the leader (`--leader-elect`, a Lease) watches and
reconciles, so statuses, finalizers and the contract are written by one replica at a time. A leader that
loses its Lease exits (exit code 1) rather than guess whether another one leads already; its Deployment
starts it again, as a standby. A new leader starts its contract generations after the one in the
ConfigMap, so the data plane never sees a generation twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes import client, config

from channels.registry import BackendPool
from control.api import channel, kinds
from control.api.admission import AdmissionSettings
from control.auth import Access, load_or_create_token, secure_dir
from control.contract_board import ContractBoard
from control.crds import crd_kinds
from control.operator.cache import CachedStore, WatchCache
from control.operator.contract_configmap import ContractConfigMaps
from control.operator.conversion import point_conversions, service_client_config
from control.operator.issuer import RETRY_S, ApiServerIssuer, DiscoveryError
from control.operator.lease import LeaderElector, LeaseSettings
from control.operator.service_accounts import OidcServiceAccounts
from control.operator.watch_loop import Key, WatchLoop
from control.operator.webhooks import Webhooks, server_ssl
from control.reconcilers.controller import Reconciler
from control.reconcilers.served import Served
from control.reconcilers.snapshot import Snapshot
from control.server import create_app
from control.service import ControlService
from control.settings import ControlSettings, OperatorSettings
from control.store.kubernetes import KubernetesStore
from core.cli_settings import ServiceSettings
from core.contract import Contract
from core.runtime import serve

log = logging.getLogger("nerve.operator")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
MIRROR_EVERY_S = 1.0
"""How often a standby reads the contract ConfigMaps for the data plane's long polls it answers."""
UNWATCHED = frozenset({"Event"})
"""Kinds no reconcile outcome depends on, changing all the time on a cluster: left to the resync."""


def watched_kinds() -> list[str]:
    return [kind.kind for kind in kinds.KINDS if kind.kind not in UNWATCHED]


def kubeconfig_path(settings: OperatorSettings) -> str | None:
    """--kubeconfig; else None (the ServiceAccount) in a Pod, kubectl's kubeconfig elsewhere."""
    if settings.kubeconfig:
        return settings.kubeconfig
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return first or str(Path.home() / ".kube" / "config")


class KubeconfigError(Exception):
    """No way to reach the API server: named in one line at start (exit 2), not a traceback."""


def check_kubeconfig(settings: OperatorSettings) -> None:
    path = kubeconfig_path(settings)
    try:
        if path is None:
            config.load_incluster_config(client.Configuration())
        else:
            config.load_kube_config(config_file=path, client_configuration=client.Configuration())
    except (config.ConfigException, OSError) as exc:
        if path is None:
            where = "in-cluster (the Pod's ServiceAccount)"
        else:
            where = f"--kubeconfig {path}" if settings.kubeconfig else f"kubeconfig {path} (--kubeconfig)"
        raise KubeconfigError(f"--store kubernetes: cannot use {where}: {exc}") from None


def own_namespace(settings: OperatorSettings) -> str:
    if settings.namespace:
        return settings.namespace
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return "default"


class GatedReconciler(Reconciler):
    """Control's reconciler that reconciles only while `leading` is set: on a standby, the control API's
    writes and the resync reconcile nothing (the leader's watch sees the writes)."""

    leading: asyncio.Event

    async def reconcile(self) -> Contract:
        if not self.leading.is_set():
            return self.contract
        return await super().reconcile()


def own_username(api_client: client.ApiClient) -> str:
    """Who the API server says this process is (a SelfSubjectReview): the webhooks let its writes through."""
    authentication: Any = client.AuthenticationV1Api(api_client)
    review = authentication.create_self_subject_review({"apiVersion": "authentication.k8s.io/v1",
                                                         "kind": "SelfSubjectReview"})
    return str(review.status.user_info.username or "")


async def operate(stop: asyncio.Event, common: ServiceSettings, settings: ControlSettings,
                  operator: OperatorSettings, pool: BackendPool, admission: AdmissionSettings) -> int:
    """Run until `stop` (exit code 0) or until the Lease is lost (exit code 1)."""
    store = KubernetesStore.from_kubeconfig(kubeconfig_path(operator))
    api = store.api_client
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    # The API server names a writer in managedFields by its user agent's first part: this replica's identity,
    # the Lease's holderIdentity, so `kubectl get -o yaml --show-managed-fields` says which replica wrote.
    api.user_agent = f"{identity}/nerve-control"
    namespace = own_namespace(operator)
    secure_dir(settings.state_dir)
    access = Access(load_or_create_token(settings.state_dir, settings.token), settings.allowed_hosts,
                    settings.allowed_origins)
    board = ContractBoard()
    configmaps = (ContractConfigMaps(api, namespace, operator.contract_configmap)
                  if operator.contract_configmap else None)

    accounts = OidcServiceAccounts(api)

    async def publish(contract: Contract) -> None:
        if configmaps is not None:
            await configmaps.write(contract)
        await board.publish(contract)
        accounts.follow(contract)  # the senders' OIDC ServiceAccounts (control/operator/service_accounts.py)

    elector = (LeaderElector(api, LeaseSettings(namespace, operator.lease_name, identity, operator.lease_duration,
                                                operator.lease_renew_every)) if operator.leader_elect else None)
    leading = elector.leading if elector is not None else asyncio.Event()
    # The reconciler reads through the watch loop's cache (control/operator/cache.py); the control API reads
    # the API server itself.
    cache = WatchCache()
    # authentication-oidc: the tokens are the API server's service-account tokens, so its issuer and keys
    # go into the contract (control/operator/issuer.py).
    issuer = ApiServerIssuer(api, refresh_s=operator.oidc_keys_refresh)
    try:
        await issuer.refresh()
    except DiscoveryError as exc:
        log.warning("service-account issuer not read (needed with authentication-oidc: the ingress refuses "
                    "tokens until it is; retried every %.0fs): %s", min(operator.oidc_keys_refresh, RETRY_S), exc)
    reconciler = GatedReconciler(CachedStore(store, cache), pool, settings, publish,
                                 api_url=f"http://{common.host}:{common.port}", on_cluster=True, issuer=issuer)
    reconciler.leading = leading

    async def reconcile(keys: set[Key]) -> None:
        await reconciler.reconcile()

    crds = {kind.kind for kind in crd_kinds()}
    loop = WatchLoop(store, watched_kinds(), reconcile, status_blind=[k for k in watched_kinds() if k not in crds],
                     cache=cache)
    control = ControlService(store, reconciler, admission, resync_seconds=settings.resync_seconds)
    runner, _ = await serve(create_app(control, access, board), common.host, common.port,
                            drain_timeout=common.drain_timeout)
    webhook_runner = await _serve_webhooks(store, api, admission, settings, operator, common.host)

    async def lead() -> None:
        # Generations go on from the ConfigMap's: a new leader must not publish one the data plane has seen.
        if configmaps is not None:
            try:
                previous = await configmaps.read()
            except Exception as exc:  # noqa: BLE001 - unreadable: the first publish overwrites it
                log.warning("contract ConfigMap unreadable, starting from generation 0: %s", exc)
                previous = None
            if previous is not None and previous.generation > reconciler.contract.generation:
                reconciler.contract = Contract(previous.generation)
        await control.start()
        loop.start()
        issuer.start(reconciler.reconcile)

    async def mirror() -> None:
        # A standby answers the data plane's long polls too (the control Service balances over every
        # replica): with the leader's contract, read from the ConfigMaps it writes.
        while not leading.is_set():
            try:
                current = await configmaps.read() if configmaps is not None else None
            except Exception as exc:  # noqa: BLE001 - the next read tries again
                log.warning("standby: contract ConfigMap unreadable: %s", exc)
                current = None
            shown = board.contract
            if current is not None and (shown is None or shown.generation != current.generation):
                await board.publish(current)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(leading.wait(), MIRROR_EVERY_S)

    mirror_task = asyncio.create_task(mirror(), name="contract-mirror") if configmaps is not None else None
    leader_task: asyncio.Task[None] | None = None
    code = 0
    try:
        if elector is None:
            leading.set()
            await lead()
        else:
            elector.start()

            async def when_leading() -> None:
                await leading.wait()
                await lead()
            leader_task = asyncio.create_task(when_leading(), name="operator-lead")
        waits = [asyncio.create_task(stop.wait())]
        if elector is not None:
            waits.append(asyncio.create_task(elector.lost.wait()))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if elector is not None and elector.lost.is_set():
            log.error("the Lease is lost: exiting, to start again as a standby")
            code = 1
    finally:
        if mirror_task is not None:
            mirror_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mirror_task
        if leader_task is not None:
            leader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leader_task
        await issuer.stop()
        await accounts.stop()
        await loop.stop()
        await board.close()
        await runner.cleanup()
        if webhook_runner is not None:
            await webhook_runner.cleanup()
        await control.stop()
        if elector is not None:
            await elector.stop()  # releases the Lease: a standby takes over at once
        await store.close()
    return code


async def _serve_webhooks(store: KubernetesStore, api: client.ApiClient, admission: AdmissionSettings,
                          settings: ControlSettings, operator: OperatorSettings, host: str) -> web.AppRunner | None:
    if not operator.webhook_port:
        return None
    try:
        trusted = frozenset({await asyncio.to_thread(own_username, api)})
    except Exception as exc:  # noqa: BLE001 - then every write is checked, the operator's own too
        log.warning("could not learn the operator's own username (its writes go through the webhooks): %s", exc)
        trusted = frozenset()

    async def channel_defaults() -> dict[str, object] | None:
        return await store.get("ConfigMap", channel.DEFAULTS_NAMESPACE, channel.DEFAULTS_CONFIGMAP)

    async def lookup(kind: str, namespace: str, name: str) -> dict[str, object] | None:
        return await store.get(kind, namespace, name)

    async def bindings(namespace: str) -> Snapshot:
        found = await store.get("Namespace", "", namespace)
        return Snapshot.of([*(await store.list("SinkBinding", namespace)).items, *([found] if found else [])])

    hooks = Webhooks(admission, channel_defaults=channel_defaults, trusted=trusted,
                     served=Served.parse(settings.broker_classes, settings.channel_kinds), lookup=lookup,
                     bindings=bindings, selection_mode=settings.sink_binding_selection_mode)
    runner = web.AppRunner(hooks.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, operator.webhook_port, ssl_context=server_ssl(operator.webhook_cert_dir)).start()
    log.info("admission webhooks on https://%s:%d (trusting %s)", host, operator.webhook_port,
             ", ".join(sorted(trusted)) or "nobody")
    if operator.webhook_service:
        config = service_client_config(own_namespace(operator), operator.webhook_service,
                                       operator.webhook_cert_dir / "ca.crt")
        try:
            await point_conversions(api, config)
        except Exception as exc:  # noqa: BLE001 - served anyway; older versions fail until a replica manages
            log.warning("could not point the CRDs' conversion at %s: %s", operator.webhook_service, exc)
    return runner


