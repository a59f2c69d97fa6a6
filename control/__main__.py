"""`python -m control`: the control plane as its own service; writes the contract file the data plane follows
and serves the same contract to services that long-poll it (`--contract-from control`).
With `--store kubernetes` it is the operator on a Kubernetes API server (control/operator/, docs/kubernetes.md)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from channels.registry import service_pool
from control.api.admission import AdmissionSettings
from control.api.broker import DEFAULT_CLASS_FOR_BACKEND
from control.auth import Access, load_or_create_token, secure_dir
from control.contract_board import ContractBoard
from control.reconcilers.controller import Reconciler
from control.server import create_app
from control.service import ControlService
from control.settings import ControlSettings, OperatorSettings
from control.store.sqlite import SqliteStore
from core.cli_settings import API_PORT, ServiceSettings, parse_service, service_settings
from core.contract import Contract, read, write_atomically
from core.observability import TelemetrySettings
from core.oidc import Issuer, SigningKey
from core.runtime import run, serve
from core.settings import Setting, build, settings_of


def command_line() -> list[Setting]:
    """The command line of `python -m control`: as a service, Brokers default to Kafka (memory lives only
    inside one process, so it cannot serve a separate ingress and dispatcher)."""
    control = [s.but(default="kafka", help=f"{s.help.rstrip('.')}; memory works only inside one process (`nerve up`).")
               if s.name == "default_backend" else s for s in settings_of(ControlSettings)]
    return [*service_settings(port=API_PORT, contract=False), *control, *settings_of(OperatorSettings)]


def main(argv: Sequence[str] | None = None, prog: str = "python -m control") -> None:
    values = parse_service(prog, __doc__, command_line(), argv)
    common = build(ServiceSettings, values)
    settings = build(ControlSettings, values)
    operator = build(OperatorSettings, values)
    default_class = DEFAULT_CLASS_FOR_BACKEND[settings.default_backend]
    if operator.store == "kubernetes":
        _operate(values, common, settings, operator)
        return

    async def service(stop: asyncio.Event) -> None:
        pool = service_pool(common.kafka_bootstrap, common.nats_url)
        secure_dir(settings.state_dir)
        access = Access(load_or_create_token(settings.state_dir, settings.token), settings.allowed_hosts,
                        settings.allowed_origins)
        store = SqliteStore(settings.db_path)
        previous = read(settings.contract_path) if settings.contract_path.exists() else Contract()

        board = ContractBoard()

        async def publish(contract: Contract) -> None:
            # The file for services that share a volume (a ConfigMap on Kubernetes), the board for those
            # that long-poll the API (compose without a shared volume): the same generation to both.
            write_atomically(settings.contract_path, contract)
            await board.publish(contract)

        # Nerve's own OIDC issuer (authentication-oidc): the key stays in control's state dir; the ingress
        # verifies with the public keys the contract carries.
        issuer = Issuer(SigningKey.load_or_create(settings.state_dir),
                        settings.oidc_issuer or f"http://{common.host}:{common.port}")
        reconciler = Reconciler(store, pool, settings, publish, contract=Contract(previous.generation),
                                api_url=f"http://{common.host}:{common.port}", issuer=issuer)
        admission = AdmissionSettings(default_class, default_channel_kind=settings.channel_kind)
        control = ControlService(store, reconciler, admission, resync_seconds=settings.resync_seconds)
        await control.start()
        runner, _ = await serve(create_app(control, access, board, issuer=issuer), common.host, common.port,
                                drain_timeout=common.drain_timeout)
        try:
            await stop.wait()
        finally:
            await board.close()  # held long polls answer now rather than holding up the drain
            await runner.cleanup()
            await control.stop()
            await pool.stop()
            await store.close()

    run(service, telemetry=build(TelemetrySettings, values), service="nerve-control")


def _operate(values: dict[str, Any], common: ServiceSettings, settings: ControlSettings,
             operator: OperatorSettings) -> None:
    # Imported here: the official Kubernetes client is loaded only by the operator.
    from control.operator.run import KubeconfigError, check_kubeconfig, operate

    try:
        check_kubeconfig(operator)
    except KubeconfigError as exc:
        print(f"python -m control: {exc}", file=sys.stderr)
        sys.exit(2)

    admission = AdmissionSettings(DEFAULT_CLASS_FOR_BACKEND[settings.default_backend],
                                  default_channel_kind=settings.channel_kind)
    code = 0

    async def service(stop: asyncio.Event) -> None:
        nonlocal code
        pool = service_pool(common.kafka_bootstrap, common.nats_url)
        try:
            code = await operate(stop, common, settings, operator, pool, admission)
        finally:
            await pool.stop()

    run(service, telemetry=build(TelemetrySettings, values), service="nerve-control")
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
