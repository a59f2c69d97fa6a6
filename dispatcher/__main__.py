"""`python -m dispatcher`: the dispatcher as its own service, following the contract file.

It serves `/metrics`, `/healthz` and `/readyz` on --port.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from channels.registry import service_pool
from core.cli_settings import DISPATCHER_PORT, ServiceSettings, contract_feed, parse_service, service_settings
from core.eventtypes import EventTypeSettings, service_auto_create
from core.eventtypes import problems as eventtype_problems
from core.kube_tokens import TokenSettings, sender_tokens
from core.observability import TelemetrySettings
from core.runtime import follow_contract, run
from core.settings import Setting, build, settings_of
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings


def command_line() -> list[Setting]:
    return [*service_settings(port=DISPATCHER_PORT), *settings_of(DispatcherSettings),
            *settings_of(EventTypeSettings), *settings_of(TokenSettings)]


def main(argv: Sequence[str] | None = None, prog: str = "python -m dispatcher") -> None:
    values = parse_service(prog, __doc__, command_line(), argv)
    common = build(ServiceSettings, values)
    tokens = build(TokenSettings, values)
    settings = build(DispatcherSettings, values, drain_timeout_s=common.drain_timeout)
    eventtypes = build(EventTypeSettings, values)
    for problem in eventtype_problems(eventtypes, common.control_url):
        print(f"{prog}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)

    async def service(stop: asyncio.Event) -> None:
        pool = service_pool(common.kafka_bootstrap, common.nats_url)
        try:
            async with service_auto_create(eventtypes, common.control_url, common.control_token) as auto_create:
                dispatcher = Dispatcher(pool, settings, auto_create=auto_create)
                # OIDC tokens for Triggers' and Subscriptions' identities: from control, or TokenRequests
                dispatcher.tokens = sender_tokens(tokens, common.control_url, common.control_token)
                await follow_contract(stop, dispatcher, contract=contract_feed(common), host=common.host,
                                      port=common.port)
        finally:
            await pool.stop()

    run(service, telemetry=build(TelemetrySettings, values), service="nerve-dispatcher")


if __name__ == "__main__":
    main()
