"""`python -m ingress`: the Broker ingress as its own service, following the contract file."""

from __future__ import annotations

import argparse
import asyncio

from channels.registry import BackendPool, BackendSettings
from core.cli_settings import add_common
from core.contract_watch import ContractWatcher
from core.runtime import run, serve
from ingress.app import Ingress, create_app
from ingress.settings import IngressSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ingress", description=__doc__)
    add_common(parser, port=8080)
    parser.add_argument("--max-body-bytes", type=int, default=IngressSettings().max_body_bytes)
    args = parser.parse_args()
    settings = IngressSettings(host=args.host, port=args.port, max_body_bytes=args.max_body_bytes)

    async def service(stop: asyncio.Event) -> None:
        pool = BackendPool(BackendSettings(kafka_bootstrap_servers=args.kafka_bootstrap, nats_url=args.nats_url))
        ingress = Ingress(pool, settings)
        watcher = ContractWatcher(args.contract, [ingress.apply])
        await watcher.start()
        runner, _ = await serve(create_app(ingress, with_metrics=True), settings.host, settings.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await watcher.stop()
            await pool.stop()

    run(service)


if __name__ == "__main__":
    main()
