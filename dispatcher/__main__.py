"""`python -m dispatcher`: the dispatcher as its own service, following the contract file.

It serves `/metrics`, `/healthz` and `/readyz` on --port.

With --workers N (N > 1) this process starts N worker processes of the same command (core/workers.py):
they share --port through SO_REUSEPORT and every Trigger's consumer group, so Kafka assigns each worker
its share of the partitions; one that dies is started again, SIGINT/SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from channels.registry import service_pool
from core.cli_settings import DISPATCHER_PORT, ServiceSettings, contract_feed, parse_service, service_settings
from core.eventtypes import EventTypeSettings, service_auto_create
from core.eventtypes import problems as eventtype_problems
from core.kube_tokens import TokenSettings, sender_tokens
from core.observability import TelemetrySettings
from core.runtime import follow_contract, run
from core.settings import Setting, build, settings_of
from core.workers import Report, WorkerGroup, bind_to_parent, python_module, reserve_port, worker_index
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings


def command_line() -> list[Setting]:
    return [*service_settings(port=DISPATCHER_PORT), *settings_of(DispatcherSettings),
            *settings_of(EventTypeSettings), *settings_of(TokenSettings)]


def main(argv: Sequence[str] | None = None, prog: str = "python -m dispatcher") -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    values = parse_service(prog, __doc__, command_line(), argv)
    common = build(ServiceSettings, values)
    tokens = build(TokenSettings, values)
    settings = build(DispatcherSettings, values, drain_timeout_s=common.drain_timeout)
    eventtypes = build(EventTypeSettings, values)
    for problem in eventtype_problems(eventtypes, common.control_url):
        print(f"{prog}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)

    if settings.workers > 1 and worker_index() is None:
        run_workers(prog, argv, settings.workers, common.host, common.port, common.drain_timeout, values)
        return
    worker = worker_index() is not None
    if worker:
        bind_to_parent()

    async def service(stop: asyncio.Event) -> None:
        pool = service_pool(common.kafka_bootstrap, common.nats_url)
        try:
            async with service_auto_create(eventtypes, common.control_url, common.control_token) as auto_create:
                dispatcher = Dispatcher(pool, settings, auto_create=auto_create)
                # OIDC tokens for Triggers' and Subscriptions' identities: from control, or TokenRequests
                dispatcher.tokens = sender_tokens(tokens, common.control_url, common.control_token)
                await follow_contract(stop, dispatcher, contract=contract_feed(common), host=common.host,
                                      port=common.port, reuse_port=worker, on_ready=Report().ready)
        finally:
            await pool.stop()

    run(service, telemetry=build(TelemetrySettings, values), service="nerve-dispatcher")


def run_workers(prog: str, argv: list[str], count: int, host: str, port: int, drain_timeout: float,
                values: dict[str, Any]) -> None:
    """The parent of `count` dispatcher workers: the same command line, one worker each, on one port."""
    holder, bound = reserve_port(host, port)
    command = python_module("dispatcher", [*argv, "--port", str(bound), "--workers", "1"])

    async def parent(stop: asyncio.Event) -> None:
        group = WorkerGroup("dispatcher", lambda _: command, count, stop_timeout_s=drain_timeout + 5)
        await group.start()
        logging.getLogger("nerve.dispatcher").info("%s: %d workers (pids %s)", prog, count,
                                                   " ".join(map(str, group.pids)))
        try:
            await stop.wait()
        finally:
            await group.stop()
            holder.close()

    run(parent, telemetry=build(TelemetrySettings, values), service="nerve-dispatcher")


if __name__ == "__main__":
    main()
