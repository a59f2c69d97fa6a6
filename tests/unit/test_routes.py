"""The ingress route table: each addressable kind's path pattern, resource lookup and 404 wording."""

from __future__ import annotations

import pytest

from core.contract import Reference, Resource
from core.errors import NotFound
from core.events import Event
from ingress.routes import BROKER, CHANNEL, ROUTES, RouteTable, Target

TABLE = ROUTES


def _resource(kind: str, path: str) -> Resource:
    return Resource(uid="u", reference=Reference(uid="u", namespace="ns", name="x", kind=kind), backend="memory",
                    topic="t", ingress_path=path)


@pytest.mark.parametrize(("path", "kind", "namespace", "name"), [
    ("/ns/default", "Broker", "ns", "default"),
    ("/ns/default/", "Broker", "ns", "default"),
    ("/channels/ns/c1", "Channel", "ns", "c1"),
    ("/channels/ns/c1/", "Channel", "ns", "c1"),
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
    assert ROUTES.usage == "/<namespace>/<broker> or /channels/<namespace>/<channel>"
    assert ROUTES.kinds == "Broker or Channel"


def test_resolve_finds_the_resource_of_the_routes_kind_and_words_a_404_as_kubectl() -> None:
    broker = _resource("Broker", "/ns/default")
    resources = {"/ns/default": broker, "/channels/ns/c1": _resource("Broker", "/channels/ns/c1")}
    assert RouteTable.resolve(Target(BROKER, "ns", "default"), resources) is broker
    with pytest.raises(NotFound, match=r'^brokers\.eventing\.knative\.dev "nope" not found$'):
        RouteTable.resolve(Target(BROKER, "ns", "nope"), resources)
    # A resource of another kind at the path is not this route's resource.
    with pytest.raises(NotFound, match=r'^channels\.messaging\.knative\.dev "c1" not found$'):
        RouteTable.resolve(Target(CHANNEL, "ns", "c1"), resources)


@pytest.mark.parametrize("kind", ["InMemoryChannel", "KafkaChannel", "NatsJetStreamChannel"])
def test_the_channel_route_reaches_every_concrete_channel_kind(kind: str) -> None:
    channel = _resource(kind, "/channels/ns/c1")
    assert RouteTable.resolve(Target(CHANNEL, "ns", "c1"), {"/channels/ns/c1": channel}) is channel
    with pytest.raises(NotFound):
        RouteTable.resolve(Target(BROKER, "channels", "c1"), {"/channels/c1": channel})


@pytest.mark.parametrize(("host", "namespace", "name"), [
    ("orders-kn-channel.ns1.svc.cluster.local", "ns1", "orders"),
    ("orders-kn-channel.ns1.svc.cluster.local:8080", "ns1", "orders"),
    ("my-kn-channel-kn-channel.ns1.svc", "ns1", "my-kn-channel"),
    ("Orders-kn-channel.NS1", "ns1", "orders"),
])
def test_knatives_channel_host_names_the_channel(host: str, namespace: str, name: str) -> None:
    target = TABLE.match_host(host)
    assert target is not None
    assert (target.route, target.namespace, target.name) == (CHANNEL, namespace, name)


@pytest.mark.parametrize("host", [None, "", "127.0.0.1:8080", "localhost", "[::1]:8080", "-kn-channel.ns1.svc",
                                  "orders-kn-channel", "orders-kn-channel..svc", "broker-ingress.knative-eventing"])
def test_other_hosts_name_no_channel(host: str | None) -> None:
    assert TABLE.match_host(host) is None


def test_a_channel_leaves_the_event_as_it_came() -> None:
    assert CHANNEL.stamp is None


def test_the_broker_route_stamps_arrival_time_and_ttl() -> None:
    event = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"})
    assert BROKER.stamp is not None
    BROKER.stamp(event, 5)
    assert event.attributes["knativebrokerttl"] == 5
    assert "knativearrivaltime" in event.attributes


def test_a_paths_match_is_kept_and_the_table_of_matches_stays_bounded() -> None:
    import ingress.routes

    table = RouteTable([BROKER, CHANNEL])
    first = table.match("/ns/default")
    assert first is not None and table.match("/ns/default") is first and first.path == "/ns/default"
    assert table.match("/channels/ns/c1/") == Target(CHANNEL, "ns", "c1")
    assert Target(CHANNEL, "ns", "c1").path == "/channels/ns/c1"
    for i in range(ingress.routes._MATCHES_MAX + 10):  # paths clients invent: each still matched
        target = table.match(f"/ns{i}/b")
        assert target is not None and target.namespace == f"ns{i}"
        assert table.match(f"/x/{i}/y/z") is None
    assert len(table._matches) <= ingress.routes._MATCHES_MAX
    long_path = "/ns/" + "b" * ingress.routes._KEPT_PATH_MAX
    assert table.match(long_path) is not None and long_path not in table._matches
