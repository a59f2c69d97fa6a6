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


class SourceWatch(ResourceWatch, Protocol):
    """A watch made for one source (its own credentials), closed when the source stops."""

    async def close(self) -> None: ...


class WatchProvider(Protocol):
    """Makes each ApiServerSource's watch when no store is handed over: `--watch kubernetes`
    (sources/kube_watch.py, as the source's ServiceAccount)."""

    async def for_source(self, source: Source) -> SourceWatch:
        """Raise BackendError when it cannot be made yet (the source is started again later)."""
        ...


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
    watches: WatchProvider | None = None
    """Where an ApiServerSource gets a watch of its own when `watch` is None: the Kubernetes API server
    (`--watch kubernetes`)."""


AdapterFactory = Callable[[Source, SourceContext], Adapter]


def part_name(source: Source) -> str:
    """How logs, /readyz and nerve_supervised_restarts_total name a source: KafkaSource/<ns>/<name>."""
    ref = source.reference
    return f"{ref.kind}/{ref.namespace}/{ref.name}"
