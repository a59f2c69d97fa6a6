"""`python -m sources`: the source adapters (KafkaSource) as their own service, following the contract file.

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
from sources.service import Sources
from sources.settings import SourcesSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sources", description=__doc__)
    add_common(parser, port=9091)
    parser.add_argument("--max-inflight", type=int, default=SourcesSettings().max_inflight,
                        help="events one source delivers concurrently (unordered mode)")
    args = parser.parse_args()
    settings = SourcesSettings(max_inflight=args.max_inflight)

    async def service(stop: asyncio.Event) -> None:
        pool = BackendPool(BackendSettings(kafka_bootstrap_servers=args.kafka_bootstrap, nats_url=args.nats_url))
        sources = Sources(pool, settings)
        await sources.start()
        watcher = ContractWatcher(args.contract, [sources.apply])
        await watcher.start()
        app = web.Application()
        observability.add_routes(app, generation=lambda: sources.generation)
        runner, _ = await serve(app, args.host, args.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await watcher.stop()
            await sources.stop()
            await pool.stop()

    run(service)


if __name__ == "__main__":
    main()
