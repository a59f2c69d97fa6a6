"""Which addressable kind a request path names, and how its resource is found: one entry per kind.

Each kind that takes events over HTTP registers here, in `ROUTES`, its path pattern, the contract kinds
it reaches, the kubectl name used in its 404, and what the kind does to an event that enters it. The
ingress handler knows no kind by name: it matches the path (or, for channels, the Host) against the
table, looks the resource up in the contract, and runs the route's hook.

A Broker is `/<namespace>/<name>`; every channel kind (InMemoryChannel, KafkaChannel,
NatsJetStreamChannel) is `/channels/<namespace>/<name>`, or Knative's host form: a POST to `/` with
`Host: <name>-kn-channel.<namespace>.svc.cluster.local`, which is the address Knative gives a channel
inside a cluster (pkg/channel/event_receiver.go maps hosts the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from core.contract import Resource
from core.errors import NotFound
from core.events import Event
from core.hops import enter_broker
from core.kept import Kept

NAMESPACE: Final = "{namespace}"
NAME: Final = "{name}"

Stamp = Callable[[Event, int], None]
"""What a kind does to each event entering it, given the ingress's max TTL; raises NerveError to refuse."""


def _enter_broker(event: Event, max_ttl: int) -> None:
    enter_broker(event, max_ttl=max_ttl)


@dataclass(frozen=True, slots=True)
class Route:
    kind: str
    """The contract's `reference.kind` of the resources this route reaches."""
    resource: str
    """The kubectl resource name (`brokers.eventing.knative.dev`), used in the 404 as kubectl words it."""
    pattern: str
    """Path segments, `{namespace}` and `{name}` standing for themselves, anything else literal."""
    stamp: Stamp | None = None
    reaches: frozenset[str] = frozenset()
    """The contract kinds behind this route when they are not just `kind` (the channel kinds)."""
    host_suffix: str | None = None
    """A Host whose first label ends in this (`<name>-kn-channel.<ns>...`) names a resource of this route."""
    kinds: frozenset[str] = field(init=False, repr=False, compare=False)
    """`reaches`, or this route's own kind: what `serves` accepts."""
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The pattern's path segments."""

    def __post_init__(self) -> None:
        # Worked out once: every request asks (route matching, the resource's lookup, its metrics).
        object.__setattr__(self, "kinds", self.reaches or frozenset((self.kind,)))
        object.__setattr__(self, "segments", tuple(self.pattern.strip("/").split("/")))

    def serves(self, resource: Resource) -> bool:
        return resource.kind in self.kinds

    @property
    def usage(self) -> str:
        """The pattern as a user reads it: /<namespace>/<broker>."""
        return self.pattern.replace(NAMESPACE, "<namespace>").replace(NAME, f"<{self.kind.lower()}>")

    def path(self, namespace: str, name: str) -> str:
        """The contract's ingress path of the resource `namespace/name`."""
        return self.pattern.replace(NAMESPACE, namespace).replace(NAME, name)


@dataclass(frozen=True, slots=True)
class Target:
    """A path matched to a route: the resource it names, found or not."""

    route: Route
    namespace: str
    name: str
    path: str = field(init=False, compare=False)
    """The contract's ingress path of the resource it names (`Route.path`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", self.route.path(self.namespace, self.name))


_MATCHES_MAX = 4096
"""Request paths whose match `RouteTable.match` keeps (a path is matched once, not per request); past that,
or for a path longer than _KEPT_PATH_MAX, each request matches afresh: the table stays small whatever
paths clients invent."""
_KEPT_PATH_MAX = 512


class RouteTable:
    def __init__(self, routes: Sequence[Route]) -> None:
        self._declared = tuple(routes)  # messages name the routes in the order they were declared
        # More literal segments first, so `/channels/<ns>/<name>` is never read as a Broker path.
        self._routes = sorted(routes, key=lambda r: -sum(s not in (NAMESPACE, NAME) for s in r.segments))
        self._matches: Kept[Target | None] = Kept(_MATCHES_MAX, _KEPT_PATH_MAX)

    @property
    def usage(self) -> str:
        return " or ".join(r.usage for r in self._declared)

    @property
    def kinds(self) -> str:
        return " or ".join(r.kind for r in self._declared)

    def kind_of(self, resource: Resource) -> str:
        """The route kind (Broker, Channel) that serves a contract resource: how its metrics name it."""
        return next((r.kind for r in self._declared if r.serves(resource)), resource.kind)

    def match_host(self, host: str | None) -> Target | None:
        """The resource a Host header names in Knative's form (`<name>-kn-channel.<ns>.svc...`), or None."""
        if not host:
            return None
        labels = host.rpartition(":")[0].split(".") if host.rpartition(":")[2].isdigit() else host.split(".")
        if len(labels) < 2 or not labels[1]:
            return None
        for route in self._routes:
            suffix = route.host_suffix
            if suffix and labels[0].endswith(suffix) and len(labels[0]) > len(suffix):
                return Target(route, labels[1].lower(), labels[0][: -len(suffix)].lower())
        return None

    def match(self, path: str) -> Target | None:
        """The route whose pattern `path` fits (one trailing slash allowed), or None."""
        try:
            return self._matches[path]
        except KeyError:
            pass
        target = self._match(path)
        self._matches.keep(path, target)
        return target

    def _match(self, path: str) -> Target | None:
        parts = path[1:-1].split("/") if path.endswith("/") else path[1:].split("/")
        for route in self._routes:
            segments = route.segments
            if len(parts) != len(segments):
                continue
            values: dict[str, str] = {}
            for segment, part in zip(segments, parts, strict=True):
                if segment in (NAMESPACE, NAME):
                    if not part:
                        break
                    values[segment] = part
                elif segment != part:
                    break
            else:
                return Target(route, values[NAMESPACE], values[NAME])
        return None

    @staticmethod
    def resolve(target: Target, resources: Mapping[str, Resource]) -> Resource:
        """The target's resource from the contract's routable resources; NotFound in kubectl's words."""
        resource = resources.get(target.path)
        if resource is None or not target.route.serves(resource):
            # kubectl's wording, as every Nerve message words a missing resource; the namespace is in the path.
            raise NotFound(f'{target.route.resource} "{target.name}" not found')
        return resource


CHANNEL_KINDS: Final = frozenset({"InMemoryChannel", "KafkaChannel", "NatsJetStreamChannel"})

BROKER: Final = Route("Broker", "brokers.eventing.knative.dev", f"/{NAMESPACE}/{NAME}", _enter_broker)
# A channel keeps every attribute as it came (Knative's channel contract): no arrival time, no TTL.
CHANNEL: Final = Route("Channel", "channels.messaging.knative.dev", f"/channels/{NAMESPACE}/{NAME}",
                       reaches=CHANNEL_KINDS, host_suffix="-kn-channel")

ROUTES: Final = RouteTable([BROKER, CHANNEL])
"""Every addressable kind the ingress serves; a new kind adds its Route here."""
