"""The seam of the sources service: one Adapter per contract source, made by its kind's factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from channels.registry import BackendPool
from core.contract import Source
from core.delivery import Deliverer
from core.watch import ResourceWatch
from sources.settings import SourcesSettings


class Adapter(Protocol):
    """Makes or reads the events of one source and delivers them to its sink (core.delivery)."""

    @property
    def source(self) -> Source: ...

    def must_restart(self, source: Source) -> bool:
        """Whether `source` changes what is read (then stop and start anew) rather than only delivery."""
        ...

    def update(self, source: Source) -> None:
        """Take new delivery settings in place; in-flight deliveries finish with the old ones."""
        ...

    async def start(self) -> None:
        """Connect and position; raise BackendError when the backend is unreachable (retried later)."""
        ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What the sources service hands every adapter it makes: one pool, one HTTP deliverer, the settings.
    A kind that needs more of the service (a store to watch, a state dir) gets a field here, set by the
    composition root (nerve/up.py or sources/__main__.py)."""

    pool: BackendPool
    deliverer: Deliverer
    settings: SourcesSettings
    watch: ResourceWatch | None = None
    """The resource store an ApiServerSource watches: the embedded store in `nerve up`, None in a sources
    service of its own (which has none)."""


AdapterFactory = Callable[[Source, SourceContext], Adapter]


def part_name(source: Source) -> str:
    """How logs, /readyz and nerve_supervised_restarts_total name a source: KafkaSource/<ns>/<name>."""
    ref = source.reference
    return f"{ref.kind}/{ref.namespace}/{ref.name}"
