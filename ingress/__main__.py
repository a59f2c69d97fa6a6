"""`python -m ingress`: the Broker ingress as its own service, following the contract file.

With --workers N (N > 1; 0, the default, is 1: a container scales by replicas) this process starts N
worker processes of the same command that share --port through SO_REUSEPORT, restarts one that dies and
stops them all on SIGINT/SIGTERM (core/workers.py). Each worker's answers say which process gave
them: `Nerve-Worker: <pid>`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from channels.registry import service_pool
from core.cli_settings import INGRESS_PORT, ServiceSettings, contract_feed, parse_service, service_settings
from core.contract import Contract
from core.contract_watch import ContractWatcher
from core.eventtypes import EventTypeSettings, service_auto_create
from core.eventtypes import problems as eventtype_problems
from core.observability import TelemetrySettings
from core.runtime import add_site, run
from core.settings import Setting, build, settings_of
from core.tls import SchemeGuard, server_context
from core.workers import Report, WorkerGroup, bind_to_parent, python_module, reserve_port, worker_index
from ingress.app import Ingress, serve_ingress
from ingress.settings import IngressSettings

log = logging.getLogger("nerve.ingress")


def command_line() -> list[Setting]:
    return [*service_settings(port=INGRESS_PORT), *settings_of(IngressSettings), *settings_of(EventTypeSettings)]


def main(argv: Sequence[str] | None = None, prog: str = "python -m ingress") -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    values = parse_service(prog, __doc__, command_line(), argv)
    common = build(ServiceSettings, values)
    settings = build(IngressSettings, values)
    eventtypes = build(EventTypeSettings, values)
    for problem in eventtype_problems(eventtypes, common.control_url):
        print(f"{prog}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        print(f"{prog}: error: --tls-cert and --tls-key go together", file=sys.stderr)
        raise SystemExit(2)
    try:
        tls = server_context(Path(settings.tls_cert), Path(settings.tls_key)) if settings.tls_cert else None
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        print(f"{prog}: error: --tls-cert {settings.tls_cert!r} / --tls-key {settings.tls_key!r}: {exc}",
              file=sys.stderr)
        raise SystemExit(2) from None

    workers = settings.workers or 1
    if workers > 1 and worker_index() is None:
        run_workers(prog, argv, workers, settings.host, settings.port, common.drain_timeout, values)
        return
    worker = worker_index() is not None
    if worker:
        bind_to_parent()
    report = Report()

    async def service(stop: asyncio.Event) -> None:
        pool = service_pool(common.kafka_bootstrap, common.nats_url)
        async with service_auto_create(eventtypes, common.control_url, common.control_token) as auto_create:
            ingress = Ingress(pool, settings, auto_create=auto_create)
            # Which listener takes events follows the contract's transport-encryption (core/tls.py).
            guard = SchemeGuard()

            async def applied(contract: Contract) -> None:
                report.generation(contract.generation)

            watcher = ContractWatcher(contract_feed(common), [guard.follow, ingress.apply, applied])
            await watcher.start()
            runner, _ = await serve_ingress(ingress, settings.host, settings.port, scheme=guard, with_metrics=True,
                                            worker=worker, drain_timeout=common.drain_timeout, reuse_port=worker)
            if tls is not None:
                # Workers share --https-port as they share --port (a fixed port: 0 would differ per worker).
                await add_site(runner, settings.host, settings.https_port, ssl_context=tls, reuse_port=worker)
            report.ready()
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
                await watcher.stop()
                await pool.stop()

    run(service, telemetry=build(TelemetrySettings, values), service="nerve-ingress")


def run_workers(prog: str, argv: list[str], count: int, host: str, port: int, drain_timeout: float,
                values: dict[str, Any]) -> None:
    """The parent of `count` ingress workers: the same command line, one worker each, on one port."""
    holder, bound = reserve_port(host, port)
    command = python_module("ingress", [*argv, "--port", str(bound), "--workers", "1"])

    async def parent(stop: asyncio.Event) -> None:
        group = WorkerGroup("ingress", lambda _: command, count, stop_timeout_s=drain_timeout + 5)
        await group.start()
        log.info("%s: %d workers on %s:%d (pids %s)", prog, count, host, bound, " ".join(map(str, group.pids)))
        try:
            await stop.wait()
        finally:
            await group.stop()
            holder.close()

    run(parent, telemetry=build(TelemetrySettings, values), service="nerve-ingress")


if __name__ == "__main__":
    main()
