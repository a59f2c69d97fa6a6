"""`python -m dispatcher`: the dispatcher as its own service, following the contract file.

It serves `/metrics`, `/healthz` and `/readyz` on --port.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from channels.registry import BackendPool, BackendSettings
from core import observability
from core.cli_settings import add_common
from core.contract_watch import ContractWatcher
from core.runtime import run, serve
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dispatcher", description=__doc__)
    add_common(parser, port=9090)
    parser.add_argument("--max-inflight", type=int, default=DispatcherSettings().max_inflight,
                        help="events one Trigger delivers concurrently")
    args = parser.parse_args()
    settings = DispatcherSettings(max_inflight=args.max_inflight)

    async def service(stop: asyncio.Event) -> None:
        pool = BackendPool(BackendSettings(kafka_bootstrap_servers=args.kafka_bootstrap, nats_url=args.nats_url))
        dispatcher = Dispatcher(pool, settings)
        await dispatcher.start()
        watcher = ContractWatcher(args.contract, [dispatcher.apply])
        await watcher.start()
        app = web.Application()
        observability.add_routes(app, generation=lambda: dispatcher.generation)
        runner, _ = await serve(app, args.host, args.port)
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
