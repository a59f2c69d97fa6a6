"""`nerve up`: control, ingress, dispatcher and sources in one process, sharing one channel pool.

Only here do local workloads run (Deployments, Jobs, CronJobs, Pods as processes: sources/workloads/),
reporting back to the control store through nerve/workload_reports.py.

The control plane still writes the contract file (so a separate dispatcher or ingress could follow
it), and here it also hands each new contract straight to the in-process ingress, dispatcher and sources
before `nerve apply` returns: a Trigger reported Ready is consuming already.

With ingress workers (`--workers N`, Kafka or NATS default backend; `ingress_workers()` says how many)
the ingress runs in N processes of its own on the ingress port (SO_REUSEPORT, core/workers.py), following
the contract from the control API's long poll, so that a 202 never waits behind the dispatcher's work on
this process's event loop; `publish` then also waits until every worker has applied the new generation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from channels.registry import BackendPool, BackendSettings
from control.api.admission import AdmissionSettings
from control.api.broker import DEFAULT_CLASS_FOR_BACKEND
from control.auth import Access, load_or_create_token, secure_dir
from control.autocreate import StoreRecorder
from control.contract_board import ContractBoard
from control.reconcilers.controller import Reconciler
from control.server import create_app as create_control_app
from control.service import ControlService
from control.settings import ControlSettings
from control.store.sqlite import SqliteStore
from core.contract import Contract, read, write_atomically
from core.eventtypes import AutoCreate, EventTypeSettings
from core.features import Features
from core.http_server import HttpServer
from core.observability import TelemetrySettings
from core.oidc import Issuer, SigningKey, local_tokens
from core.runtime import add_site, serve, stop_all
from core.settings import settings_of
from core.tls import SchemeGuard, ServingFiles, ensure_embedded_ca, server_context
from core.workers import WorkerGroup, default_count, python_module, reserve_port
from dispatcher.service import Dispatcher
from ingress.app import Ingress, serve_ingress
from ingress.settings import IngressSettings
from nerve.up_settings import UpSettings
from nerve.workload_reports import StoreReporter
from sources.service import Sources
from sources.workloads import WorkloadRunner

__all__ = ["Embedded", "UpSettings", "ingress_workers", "run_up"]

log = logging.getLogger("nerve")


def ingress_workers(settings: UpSettings) -> int:
    """Ingress worker processes `nerve up` runs: --workers, or one per core; none (the ingress in this
    process) with the memory backend, whose events never leave this process, under transport
    encryption, whose https listener (and its switching with config-features) this process runs, and
    with --authentication-oidc enabled, whose token check uses this process's issuer."""
    if settings.backend == "memory" or settings.transport_encryption.lower() in ("permissive", "strict") \
            or settings.authentication_oidc.lower() == "enabled":
        return 0
    return settings.ingress.workers or default_count()


class Embedded:
    """Every service of `nerve up`, started and stopped together; tests use it directly on port 0.

    `ingress_workers` > 0 runs the ingress in that many processes of its own (`ingress_workers()`)."""

    def __init__(self, settings: UpSettings, *, ingress_workers: int = 0) -> None:
        self.settings = settings
        self.ingress_workers = ingress_workers
        self.workers: WorkerGroup | None = None
        self.pool = BackendPool(
            BackendSettings(
                memory=settings.memory, kafka_bootstrap_servers=settings.kafka_bootstrap, nats_url=settings.nats_url
            )
        )
        # EventType auto-create (off by default): ingress and dispatcher queue, control's store is written.
        events = settings.eventtypes
        self.auto_create = AutoCreate(max_pending=events.max_pending, max_seen=events.max_seen) \
            if events.eventtype_auto_create else None
        self.ingress = Ingress(self.pool, settings.ingress, auto_create=self.auto_create)
        self.dispatcher = Dispatcher(self.pool, settings.dispatcher, auto_create=self.auto_create)
        # PingSource keeps its last fired ticks in the state dir of `nerve up`.
        self.sources = Sources(self.pool, dataclasses.replace(settings.sources, state_dir=settings.state_dir))
        self.reporter = StoreReporter()
        self.workloads = WorkloadRunner(settings.state_dir / "logs", self.reporter)
        self.ingress_url = ""
        """The Broker ingress (http; under --transport-encryption strict the https one, the only one)."""
        self.ingress_https_url = ""
        """The https listener, when transport encryption is on ("" otherwise)."""
        self.ca_path: Path | None = None
        """The CA file clients verify the https listener with (published as CACerts), when Nerve made it."""
        # Until control publishes the first contract, the listeners take what the flag says.
        self._guard = SchemeGuard(Features.from_json({"transport-encryption": settings.transport_encryption}))
        self._ingress_runner: HttpServer | None = None
        self._tls_again: asyncio.Task[Contract] | None = None
        self.api_url = ""
        self.token = ""
        """The control API's bearer token (NERVE_TOKEN, or the one in <state-dir>/token)."""
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._store: SqliteStore | None = None
        self.service: ControlService | None = None
        self.issuer: Issuer | None = None

    async def start(self) -> None:
        settings = self.settings
        # Nerve is its own OIDC issuer: the key in the state dir signs the tokens the dispatcher and sources
        # send (authentication-oidc); the issuer URL is control's, known once it listens.
        secure_dir(settings.state_dir)
        self.issuer = Issuer(SigningKey.load_or_create(settings.state_dir), "")
        self.dispatcher.tokens = self.sources.tokens = local_tokens(self.issuer)
        await self.dispatcher.start()
        self._closers.append(self.dispatcher.stop)
        await self.sources.start()
        self._closers.append(self.sources.stop)
        self._closers.append(self.pool.stop)
        tls_on = settings.transport_encryption.lower() in ("permissive", "strict")
        strict = settings.transport_encryption.lower() == "strict"
        https_port = settings.ingress.https_port
        if self.ingress_workers:
            # Worker processes serve plain http (ingress_workers() is 0 under transport encryption).
            holder, ingress_port = reserve_port(settings.host, settings.ingress_port)

            async def release() -> None:
                holder.close()

            self._closers.insert(0, release)
        else:
            # Under strict there is no plain listener at all; otherwise http first, as before. The guard
            # says which listener takes events (core/tls.py).
            ingress_runner, ingress_port = await serve_ingress(
                self.ingress, settings.host, https_port if strict else settings.ingress_port, scheme=self._guard,
                ssl_context=self._tls_context() if strict else None,
            )
            self._ingress_runner = ingress_runner
            self._closers.insert(0, ingress_runner.cleanup)
            if strict:
                https_port = ingress_port
            elif tls_on:
                https_port = await add_site(ingress_runner, settings.host, https_port,
                                            ssl_context=self._tls_context())
        if tls_on:
            self.ingress_https_url = f"https://{settings.host}:{https_port}"
        self.ingress_url = self.ingress_https_url if strict else f"http://{settings.host}:{ingress_port}"
        control_settings = ControlSettings(
            state_dir=settings.state_dir,
            ingress_base_url=f"http://{settings.host}:{settings.ingress_port if strict else ingress_port}",
            ingress_https_base_url=f"https://{settings.host}:{https_port}",
            ingress_ca_certs=self._published_ca(),
            default_backend=settings.backend,
            service_url_template=settings.service_url_template,
            resync_seconds=settings.resync_seconds,
            topic_template=settings.topic_template,
            consumer_group_template=settings.consumer_group_template,
            default_channel_kind=settings.default_channel_kind,
            channel_topic_template=settings.channel_topic_template,
            subscription_consumer_group_template=settings.subscription_consumer_group_template,
            delete_topics=settings.delete_topics,
            token=settings.token,
            allowed_hosts=settings.allowed_hosts,
            allowed_origins=settings.allowed_origins,
            transport_encryption=settings.transport_encryption,
            authentication_oidc=settings.authentication_oidc,
            default_authorization_mode=settings.default_authorization_mode,
            local_workloads=True,
        )
        secure_dir(control_settings.state_dir)
        self.token = load_or_create_token(control_settings.state_dir, control_settings.token)
        access = Access(self.token, control_settings.allowed_hosts, control_settings.allowed_origins)
        contract_path = control_settings.contract_path

        board = ContractBoard()
        self._closers.insert(0, board.close)

        async def publish(contract: Contract) -> None:
            write_atomically(contract_path, contract)
            await board.publish(contract)  # for a separate service following with --contract-from control
            await self._follow_tls(contract.features, reconciler)
            # Dispatcher first: a new Trigger is consuming before its Broker's route opens.
            await self.dispatcher.apply(contract)
            await self.sources.apply(contract)
            await self.workloads.apply(contract)
            await self.ingress.apply(contract)
            if self.workers is not None and not await self.workers.applied(contract.generation):
                log.warning("not every ingress worker applied contract generation %d within 10 s",
                            contract.generation)

        previous = Contract()
        if contract_path.exists():
            try:
                previous = read(contract_path)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable %s: %s", contract_path, exc)
        self._store = SqliteStore(control_settings.db_path)
        # In one process the sources service watches the store itself (ApiServerSource, embedded mode).
        self.sources.watch = self._store
        # Generations keep counting up across restarts; the first reconcile republishes the contract.
        reconciler = Reconciler(
            self._store, self.pool, control_settings, publish, contract=Contract(previous.generation),
            api_url=f"http://{settings.host}:{settings.api_port}", sources_watch_store=True, issuer=self.issuer,
        )
        default_class = DEFAULT_CLASS_FOR_BACKEND[settings.backend]
        admission = AdmissionSettings(default_class, default_channel_kind=control_settings.channel_kind)
        self.service = ControlService(self._store, reconciler, admission, resync_seconds=settings.resync_seconds)
        self.reporter.bind(self._store, reconciler.reconcile)
        await self.service.start()
        self._closers.insert(1, self.service.stop)
        if self.auto_create is not None:
            self.auto_create.start(StoreRecorder(self.service))
            self._closers.insert(1, self.auto_create.stop)
        self._closers.insert(2, self._stop_workloads)
        api_runner, api_port = await serve(create_control_app(self.service, access, board,
                                                             logs_dir=control_settings.logs_dir, issuer=self.issuer),
                                          settings.host, settings.api_port, name="control")
        self._closers.insert(1, api_runner.cleanup)
        self.api_url = f"http://{settings.host}:{api_port}"
        reconciler.api_server_sources.source_url = self.api_url  # the port, when it was 0 (tests)
        self.issuer.url = self.api_url
        await reconciler.reconcile()  # the contract names the issuer by its URL
        if self.ingress_workers:
            await self._start_workers(ingress_port)

    async def _start_workers(self, port: int) -> None:
        settings = self.settings
        args = ["--host", settings.host, "--port", str(port), "--workers", "1",
                "--contract-from", "control", "--control-url", self.api_url,
                "--kafka-bootstrap", settings.kafka_bootstrap, "--nats-url", settings.nats_url,
                *_flags(settings.ingress, IngressSettings, skip={"workers", "https_port", "tls_cert", "tls_key"}),
                *_flags(settings.eventtypes, EventTypeSettings), *_flags(settings.telemetry, TelemetrySettings)]
        env = dict(os.environ, NERVE_CONTROL_TOKEN=self.token)  # never on a command line others can read
        self.workers = WorkerGroup("ingress", lambda _: python_module("ingress", args), self.ingress_workers,
                                   env=env)
        await self.workers.start()
        self._closers.insert(0, self.workers.stop)
        log.info("nerve up: %d ingress workers (pids %s)", self.ingress_workers,
                 " ".join(map(str, self.workers.pids)))

    def _tls_files(self) -> ServingFiles:
        """The ingress's certificate: --tls-cert/--tls-key, or the one Nerve makes in <state-dir>/tls."""
        ingress = self.settings.ingress
        if ingress.tls_cert:
            ca = Path(self.settings.ingress_ca_certs) if self.settings.ingress_ca_certs else Path()
            return ServingFiles(Path(ingress.tls_cert), Path(ingress.tls_key), ca)
        files = ensure_embedded_ca(self.settings.state_dir.resolve() / "tls", [self.settings.host])
        self.ca_path = files.ca
        return files

    def _tls_context(self) -> ssl.SSLContext:
        files = self._tls_files()
        return server_context(files.cert, files.key)

    def _published_ca(self) -> str:
        """The CA file Brokers and Channels publish as CACerts: --ingress-ca-certs, else Nerve's own."""
        if self.settings.ingress_ca_certs:
            return self.settings.ingress_ca_certs
        if self.settings.ingress.tls_cert:
            return ""  # a certificate of the user's whose CA was not given: clients use their trust store
        return str(self.settings.state_dir.resolve() / "tls" / "ca.crt")

    async def _follow_tls(self, features: Features, reconciler: Reconciler) -> None:
        """Follow the contract's transport-encryption: the guard picks the listener that takes events, and a
        config-features ConfigMap that turns encryption on while running opens the https listener (on
        --https-port) and has control publish the addresses again, now with the CA it made."""
        self._guard.features = features
        if features.tls and self.workers is not None and not self.ingress_https_url:
            log.warning("transport-encryption %s: the ingress workers (--workers) serve http only; run "
                        "nerve up --transport-encryption %s for https", features.transport_encryption,
                        features.transport_encryption)
        if not features.tls or self.ingress_https_url or self._ingress_runner is None:
            return
        settings = self.settings
        try:
            port = await add_site(self._ingress_runner, settings.host, settings.ingress.https_port,
                                  ssl_context=self._tls_context())
        except OSError as exc:  # the port taken, a certificate unreadable: say so, keep serving http
            log.error("transport-encryption %s, but the https listener on %s:%d could not open: %s",
                      features.transport_encryption, settings.host, settings.ingress.https_port, exc)
            return
        self.ingress_https_url = f"https://{settings.host}:{port}"
        log.info("transport-encryption %s: the ingress now also listens on %s", features.transport_encryption,
                 self.ingress_https_url)
        self._tls_again = asyncio.create_task(reconciler.reconcile(), name="tls-addresses")

    async def _stop_workloads(self) -> None:
        """After control stopped reconciling: no report is written while the processes go."""
        await self.reporter.close()
        await self.workloads.stop()

    async def stop(self) -> None:
        if self._tls_again is not None and not self._tls_again.done():
            self._tls_again.cancel()
        closers, self._closers = self._closers, []
        await stop_all(*closers)
        if self._store is not None:
            await self._store.close()
            self._store = None


def _flags(values: Any, cls: type, *, skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The command-line flags that give a service the settings `values` of `cls` (a worker's command)."""
    flags = []
    for s in settings_of(cls):
        if s.name in skip:
            continue
        value = getattr(values, s.name)
        if isinstance(value, bool):
            flags.append(s.flag if value else s.off)
        else:
            flags.append(f"{s.flag}={value}")
    return flags


async def run_up(settings: UpSettings, stop: asyncio.Event) -> None:
    nerve = Embedded(settings, ingress_workers=ingress_workers(settings))
    try:
        await nerve.start()
        log.info("nerve up: backend %s, state in %s", settings.backend, settings.state_dir)
        token = "NERVE_TOKEN" if settings.token else str(settings.state_dir / "token")
        https = ""
        if nerve.ingress_https_url and nerve.ingress_https_url != nerve.ingress_url:
            https = f"(https: {nerve.ingress_https_url})   "
        if nerve.ca_path is not None:
            https += f"CA: {nerve.ca_path}   "
        print(
            f"Nerve is up. Brokers: {nerve.ingress_url}/<namespace>/<broker>   "
            f"Channels: {nerve.ingress_url}/channels/<namespace>/<channel>   {https}"
            f"API and /metrics: {nerve.api_url}   API token: {token}   (Ctrl-C stops)",
            flush=True,
        )
        await stop.wait()
    finally:
        log.info("nerve up: shutting down")
        await nerve.stop()
