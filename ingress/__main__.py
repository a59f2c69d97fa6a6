"""`python -m ingress`: the Broker ingress as its own service, following the contract file."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from channels.registry import service_pool
from core.cli_settings import INGRESS_PORT, ServiceSettings, contract_feed, parse_service, service_settings
from core.contract_watch import ContractWatcher
from core.eventtypes import EventTypeSettings, service_auto_create
from core.eventtypes import problems as eventtype_problems
from core.observability import TelemetrySettings
from core.runtime import add_site, run, serve
from core.settings import Setting, build, settings_of
from core.tls import SchemeGuard, server_context
from ingress.app import Ingress, create_app
from ingress.settings import IngressSettings


def command_line() -> list[Setting]:
    return [*service_settings(port=INGRESS_PORT), *settings_of(IngressSettings), *settings_of(EventTypeSettings)]


def main(argv: Sequence[str] | None = None, prog: str = "python -m ingress") -> None:
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

    async def service(stop: asyncio.Event) -> None:
        pool = service_pool(common.kafka_bootstrap, common.nats_url)
        async with service_auto_create(eventtypes, common.control_url, common.control_token) as auto_create:
            ingress = Ingress(pool, settings, auto_create=auto_create)
            # Which listener takes events follows the contract's transport-encryption (core/tls.py).
            guard = SchemeGuard()
            watcher = ContractWatcher(contract_feed(common), [guard.follow, ingress.apply])
            await watcher.start()
            app = create_app(ingress, with_metrics=True)
            app.middlewares.append(guard.middleware)
            runner, _ = await serve(app, settings.host, settings.port,
                                    name="ingress", limits=settings.limits, decompress=False,
                                    drain_timeout=common.drain_timeout)
            if tls is not None:
                await add_site(runner, settings.host, settings.https_port, ssl_context=tls)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
                await watcher.stop()
                await pool.stop()

    run(service, telemetry=build(TelemetrySettings, values), service="nerve-ingress")


if __name__ == "__main__":
    main()
