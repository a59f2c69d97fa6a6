"""The ingress route table: each addressable kind's path pattern, resource lookup and 404 wording."""

from __future__ import annotations

import pytest

from core.contract import Reference, Resource
from core.errors import NotFound
from core.events import Event
from ingress.routes import BROKER, ROUTES, Route, RouteTable, Target

CHANNEL = Route("Channel", "channels.messaging.knative.dev", "/channels/{namespace}/{name}")
TABLE = RouteTable([BROKER, CHANNEL])


def _resource(kind: str, path: str) -> Resource:
    return Resource(uid="u", reference=Reference(uid="u", namespace="ns", name="x", kind=kind), backend="memory",
                    topic="t", ingress_path=path)


@pytest.mark.parametrize(("path", "kind", "namespace", "name"), [
    ("/ns/default", "Broker", "ns", "default"),
    ("/ns/default/", "Broker", "ns", "default"),
    ("/channels/ns/c1", "Channel", "ns", "c1"),
    ("/channels/c1", "Broker", "channels", "c1"),
])
def test_a_path_matches_the_kind_whose_pattern_it_fits(path: str, kind: str, namespace: str, name: str) -> None:
    target = TABLE.match(path)
    assert target is not None
    assert (target.route.kind, target.namespace, target.name) == (kind, namespace, name)


@pytest.mark.parametrize("path", ["/ns", "/ns/default/extra", "/ns//", "//x", "/a/b/c/d"])
def test_paths_no_pattern_fits_match_nothing(path: str) -> None:
    assert TABLE.match(path) is None


def test_usage_lists_every_pattern_as_a_user_reads_it() -> None:
    assert ROUTES.usage == "/<namespace>/<broker>"
    assert TABLE.usage == "/channels/<namespace>/<channel> or /<namespace>/<broker>"


def test_resolve_finds_the_resource_of_the_routes_kind_and_words_a_404_as_kubectl() -> None:
    broker = _resource("Broker", "/ns/default")
    resources = {"/ns/default": broker, "/channels/ns/c1": _resource("Broker", "/channels/ns/c1")}
    assert RouteTable.resolve(Target(BROKER, "ns", "default"), resources) is broker
    with pytest.raises(NotFound, match=r'^brokers\.eventing\.knative\.dev "nope" not found$'):
        RouteTable.resolve(Target(BROKER, "ns", "nope"), resources)
    # A resource of another kind at the path is not this route's resource.
    with pytest.raises(NotFound, match=r'^channels\.messaging\.knative\.dev "c1" not found$'):
        RouteTable.resolve(Target(CHANNEL, "ns", "c1"), resources)


def test_the_broker_route_stamps_arrival_time_and_ttl() -> None:
    event = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"})
    assert BROKER.stamp is not None
    BROKER.stamp(event, 5)
    assert event.attributes["knativebrokerttl"] == 5
    assert "knativearrivaltime" in event.attributes
