"""`python -m control`: the control plane as its own service; writes the contract file the data plane follows."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from channels.registry import BackendPool, BackendSettings
from control.api.admission import AdmissionSettings
from control.api.broker import DEFAULT_CLASS_FOR_BACKEND
from control.reconcilers.controller import Reconciler
from control.server import create_app
from control.service import ControlService
from control.settings import DEFAULT_CONSUMER_GROUP_TEMPLATE, DEFAULT_TOPIC_TEMPLATE, ControlSettings
from control.store.sqlite import SqliteStore
from core.contract import Contract, read, write_atomically
from core.runtime import run, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m control", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("NERVE_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("NERVE_PORT", "8081")))
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("NERVE_STATE_DIR", ".nerve")))
    parser.add_argument("--ingress-base-url", default=os.environ.get("NERVE_INGRESS_URL", "http://127.0.0.1:8080"),
                        help="Brokers' status.address.url is this plus /<namespace>/<name>")
    parser.add_argument("--backend", default=os.environ.get("NERVE_BACKEND", "kafka"),
                        choices=sorted(DEFAULT_CLASS_FOR_BACKEND),
                        help="backend of Brokers that name no class (memory only works embedded)")
    parser.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", ""))
    parser.add_argument("--service-url-template", default=ControlSettings(Path(".")).service_url_template)
    parser.add_argument("--topic-template", default=DEFAULT_TOPIC_TEMPLATE, help="backend topic of a Broker")
    parser.add_argument("--consumer-group-template", default=DEFAULT_CONSUMER_GROUP_TEMPLATE,
                        help="consumer group of a Trigger")
    args = parser.parse_args()
    settings = ControlSettings(state_dir=args.state_dir, ingress_base_url=args.ingress_base_url,
                               default_backend=args.backend, service_url_template=args.service_url_template,
                               topic_template=args.topic_template,
                               consumer_group_template=args.consumer_group_template)

    async def service(stop: asyncio.Event) -> None:
        pool = BackendPool(BackendSettings(kafka_bootstrap_servers=args.kafka_bootstrap, nats_url=args.nats_url))
        store = SqliteStore(settings.db_path)
        previous = read(settings.contract_path) if settings.contract_path.exists() else Contract()

        async def publish(contract: Contract) -> None:
            write_atomically(settings.contract_path, contract)

        reconciler = Reconciler(store, pool, settings, publish, contract=Contract(previous.generation))
        control = ControlService(store, reconciler, AdmissionSettings(DEFAULT_CLASS_FOR_BACKEND[args.backend]),
                                 resync_seconds=settings.resync_seconds)
        await control.start()
        runner, _ = await serve(create_app(control), args.host, args.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await control.stop()
            await pool.stop()
            await store.close()

    run(service)


if __name__ == "__main__":
    main()
