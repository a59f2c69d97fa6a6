"""`nerve up`: control, ingress, dispatcher and sources in one process, sharing one channel pool.

Only here do local workloads run (Deployments, Jobs, CronJobs, Pods as processes: sources/workloads/),
reporting back to the control store through nerve/workload_reports.py.

The control plane still writes the contract file (so a separate dispatcher or ingress could follow
it), and here it also hands each new contract straight to the in-process ingress, dispatcher and sources
before `nerve apply` returns: a Trigger reported Ready is consuming already.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

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
from core.eventtypes import AutoCreate
from core.oidc import Issuer, SigningKey, local_tokens
from core.runtime import serve, stop_all
from dispatcher.service import Dispatcher
from ingress.app import Ingress
from ingress.app import create_app as create_ingress_app
from nerve.up_settings import UpSettings
from nerve.workload_reports import StoreReporter
from sources.service import Sources
from sources.workloads import WorkloadRunner

__all__ = ["Embedded", "UpSettings", "run_up"]

log = logging.getLogger("nerve")


class Embedded:
    """Every service of `nerve up`, started and stopped together; tests use it directly on port 0."""

    def __init__(self, settings: UpSettings) -> None:
        self.settings = settings
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
        ingress_runner, ingress_port = await serve(
            create_ingress_app(self.ingress), settings.host, settings.ingress_port, name="ingress",
            limits=settings.ingress.limits, decompress=False,
        )
        self._closers.insert(0, ingress_runner.cleanup)
        self.ingress_url = f"http://{settings.host}:{ingress_port}"
        control_settings = ControlSettings(
            state_dir=settings.state_dir,
            ingress_base_url=self.ingress_url,
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
            # Dispatcher first: a new Trigger is consuming before its Broker's route opens.
            await self.dispatcher.apply(contract)
            await self.sources.apply(contract)
            await self.workloads.apply(contract)
            await self.ingress.apply(contract)

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

    async def _stop_workloads(self) -> None:
        """After control stopped reconciling: no report is written while the processes go."""
        await self.reporter.close()
        await self.workloads.stop()

    async def stop(self) -> None:
        closers, self._closers = self._closers, []
        await stop_all(*closers)
        if self._store is not None:
            await self._store.close()
            self._store = None


async def run_up(settings: UpSettings, stop: asyncio.Event) -> None:
    nerve = Embedded(settings)
    try:
        await nerve.start()
        log.info("nerve up: backend %s, state in %s", settings.backend, settings.state_dir)
        token = "NERVE_TOKEN" if settings.token else str(settings.state_dir / "token")
        print(
            f"Nerve is up. Brokers: {nerve.ingress_url}/<namespace>/<broker>   "
            f"Channels: {nerve.ingress_url}/channels/<namespace>/<channel>   "
            f"API and /metrics: {nerve.api_url}   API token: {token}   (Ctrl-C stops)",
            flush=True,
        )
        await stop.wait()
    finally:
        log.info("nerve up: shutting down")
        await nerve.stop()
