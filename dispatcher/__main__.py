"""`python -m dispatcher`: the dispatcher as its own service, following the contract file.

It serves `/metrics`, `/healthz` and `/readyz` on --port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp import web

from channels.registry import BackendPool, BackendSettings
from core import observability
from core.cli_settings import DISPATCHER_PORT, ServiceSettings, parse_service, service_settings
from core.contract_watch import ContractWatcher
from core.runtime import run, serve
from core.settings import Setting, build, settings_of
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings


def command_line() -> list[Setting]:
    return [*service_settings(port=DISPATCHER_PORT), *settings_of(DispatcherSettings)]


def main(argv: Sequence[str] | None = None) -> None:
    values = parse_service("python -m dispatcher", __doc__, command_line(), argv)
    common = build(ServiceSettings, values)
    settings = build(DispatcherSettings, values)

    async def service(stop: asyncio.Event) -> None:
        pool = BackendPool(BackendSettings(kafka_bootstrap_servers=common.kafka_bootstrap, nats_url=common.nats_url))
        dispatcher = Dispatcher(pool, settings)
        await dispatcher.start()
        watcher = ContractWatcher(common.contract, [dispatcher.apply])
        await watcher.start()
        app = web.Application()
        observability.add_routes(app, generation=lambda: dispatcher.generation)
        runner, _ = await serve(app, common.host, common.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await watcher.stop()
            await dispatcher.stop()
            await pool.stop()

    run(service)


if __name__ == "__main__":
    main()
