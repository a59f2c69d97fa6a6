"""Events a source makes itself (PingSource ticks, ApiServerSource changes), sent as Knative's adapters send.

Knative's adapter client (`pkg/adapter/v2/cloudevents.go`) gives every event a fresh UUID `id` and `time` =
now when they are missing, applies the source's `ceOverrides` extensions, and sends with the header
`Kn-Namespace` = the source's namespace. Here the send goes through core.delivery, so a failing sink
is retried with the source's delivery settings (resources/source.py's default when it names none) and a
lost event ends in a log line and a metric, never silently.
"""

from __future__ import annotations

import uuid

from core.contract import Source
from core.delivery import Deliverer, Outcome, Target
from core.events import AttrValue, Event
from core.hops import now_rfc3339

NAMESPACE_HEADER = "Kn-Namespace"


class Emitter:
    """Builds and delivers the events of one source; `update` swaps the sink and delivery in place."""

    def __init__(self, source: Source, deliverer: Deliverer, *, default_timeout_s: float) -> None:
        self._deliverer = deliverer
        self._timeout = default_timeout_s
        self._source = source
        self._target = self._compile(source)

    def _compile(self, source: Source) -> Target:
        ref = source.reference
        # Labelled like a Trigger whose Broker and name are the source's (as KafkaSource's deliveries).
        return Target.compile(source.egress, (ref.namespace, ref.name, ref.name), default_timeout_s=self._timeout)

    def update(self, source: Source) -> None:
        self._source = source
        self._target = self._compile(source)

    def event(self, type_: str, source: str, data: bytes | None = None, *, content_type: str | None = None,
              subject: str | None = None, extensions: dict[str, AttrValue] | None = None) -> Event:
        """The event as the sink receives it: CloudEvents 1.0, a new id, time now, then the overrides."""
        attributes: dict[str, AttrValue] = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": source,
                                            "type": type_, "time": now_rfc3339()}
        if content_type:
            attributes["datacontenttype"] = content_type
        if subject:
            attributes["subject"] = subject
        attributes.update(extensions or {})
        attributes.update(self._source.config.get("ceOverrides") or {})
        return Event(attributes, data, {NAMESPACE_HEADER: self._source.reference.namespace})

    async def send(self, event: Event) -> Outcome:
        """Deliver with retries; the outcome is logged and counted by core.delivery whatever it is."""
        target = self._target
        target.metrics.inflight.inc()
        try:
            return await self._deliverer.deliver(event, target)
        finally:
            target.metrics.inflight.dec()
