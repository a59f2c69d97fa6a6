"""`python -m sources`: the source adapters (KafkaSource, PingSource, ApiServerSource, ...) as their own
service, following the contract.

It serves `/metrics`, `/healthz` and `/readyz` on --port. With `--watch kubernetes`, ApiServerSources watch
the Kubernetes API server (sources/kube_watch.py, imported only then: the `kubernetes` client is needed
for it alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from channels.registry import service_pool
from core.cli_settings import SOURCES_PORT, ServiceSettings, contract_feed, parse_service, service_settings
from core.kube_tokens import TokenSettings, sender_tokens
from core.observability import TelemetrySettings
from core.runtime import follow_contract, run
from core.settings import Setting, build, settings_of
from sources.service import Sources
from sources.settings import SourcesSettings


def command_line() -> list[Setting]:
    return [*service_settings(port=SOURCES_PORT), *settings_of(SourcesSettings), *settings_of(TokenSettings)]


def main(argv: Sequence[str] | None = None, prog: str = "python -m sources") -> None:
    values = parse_service(prog, __doc__, command_line(), argv)
    common = build(ServiceSettings, values)
    tokens = build(TokenSettings, values)
    settings = build(SourcesSettings, values, drain_timeout_s=common.drain_timeout)

    async def service(stop: asyncio.Event) -> None:
        pool = service_pool(common.kafka_bootstrap, common.nats_url)
        sources = Sources(pool, settings)
        # OIDC tokens for the sources' identities: from control, or TokenRequests
        sources.tokens = sender_tokens(tokens, common.control_url, common.control_token)
        watches = None
        if settings.watch == "kubernetes":
            from sources.kube_watch import ServiceAccountWatches

            watches = ServiceAccountWatches.from_kubeconfig(settings.kubeconfig)
            sources.watches = watches
        try:
            await follow_contract(stop, sources, contract=contract_feed(common), host=common.host, port=common.port)
        finally:
            await pool.stop()
            if watches is not None:
                await watches.close()

    run(service, telemetry=build(TelemetrySettings, values), service="nerve-sources")


if __name__ == "__main__":
    main()
