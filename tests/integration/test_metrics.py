"""/metrics as a Prometheus scrape sees it: Knative's current names and buckets after real traffic, the
older family behind --legacy-metrics, and a Grafana dashboard that queries only what Nerve serves."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core import observability
from tests.support.manifests import broker, channel, subscription, trigger
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event, eventually, running_stack

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "examples" / "grafana" / "nerve-knative-eventing.json"
KNATIVE_BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5", "5.0",
                   "7.5", "10.0", "+Inf"]


async def _scrape(stack: Stack) -> str:
    async with stack.session.get(stack.api + "/metrics") as response:
        assert response.status == 200
        return await response.text()


def _series(text: str, name: str, **labels: str) -> list[str]:
    """The sample lines of `name` whose labels include `labels`."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            found.append(line)
    return found


async def _traffic(stack: Stack, ok: Receiver, failing: Receiver) -> None:
    """A Trigger that delivers, one that fails with no dead-letter sink, a channel with a Subscription, a 404."""
    await stack.apply(
        broker("default", "obs"), trigger("good", ok.url, namespace="obs"),
        trigger("bad", failing.url, namespace="obs", delivery={"retry": 0}),
        channel("ch", "obs"), subscription("sub", ok.url, channel="ch", namespace="obs"))
    for i in range(3):
        assert await stack.send("/obs/default", event(f"b{i}", type_="greeting")) == 202
    assert await stack.send("/channels/obs/ch", event("c1", type_="on.channel")) == 202
    assert await stack.send("/obs/nope", event("x")) == 404
    await ok.wait_for(4)
    await eventually(lambda: len(failing.received) == 3)


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    ok, failing = Receiver(), Receiver(lambda i, e: Answer(500))
    await ok.start()
    await failing.start()
    yield ok, failing
    await ok.stop()
    await failing.stop()


async def test_knative_current_names_attributes_and_buckets(tmp_path: Path,
                                                            receivers: tuple[Receiver, Receiver]) -> None:
    async with running_stack(tmp_path) as stack:
        await _traffic(stack, *receivers)
        text = await _scrape(stack)

    name = "kn_eventing_dispatch_duration_seconds"
    assert f"# TYPE {name} histogram" in text
    good = _series(text, f"{name}_count", messaging_system="knative", messaging_destination_name="trigger:good.obs",
                   messaging_operation_name="send", kn_broker_name="default", kn_broker_namespace="obs",
                   cloudevents_type="greeting", url_scheme="http", http_response_status_code="202")
    assert len(good) == 1 and good[0].endswith(" 3.0"), good
    bad = _series(text, f"{name}_count", messaging_destination_name="trigger:bad.obs", http_response_status_code="500")
    assert len(bad) == 1 and bad[0].endswith(" 3.0"), bad
    buckets = _series(text, f"{name}_bucket", messaging_destination_name="trigger:good.obs")
    assert [re.search(r'le="([^"]+)"', b).group(1) for b in buckets] == KNATIVE_BUCKETS  # type: ignore[union-attr]
    # The ingress: each event stored is one dispatch to the Broker's topic, labelled with its backend.
    stored = _series(text, f"{name}_count", kn_broker_name="default", kn_broker_namespace="obs",
                     url_scheme="memory", http_response_status_code="202", cloudevents_type="greeting")
    assert len(stored) == 1 and stored[0].endswith(" 3.0"), stored
    # A Subscription's deliveries name the Subscription and its channel.
    sub = _series(text, f"{name}_count", messaging_destination_name="subscription:sub.obs", kn_channel_name="ch",
                  kn_channel_namespace="obs", http_response_status_code="202")
    assert len(sub) == 1, sub
    process = _series(text, "kn_eventing_process_duration_seconds_count",
                      messaging_destination_name="trigger:good.obs", cloudevents_type="greeting")
    assert len(process) == 1 and process[0].endswith(" 3.0"), process
    # The older family is still served (--legacy-metrics is on by default).
    assert _series(text, "mt_broker_ingress_event_count_total", broker_name="default", namespace_name="obs")
    assert _series(text, "mt_broker_filter_event_dispatch_latencies_count", trigger_name="good")


@pytest.fixture
def no_legacy() -> Iterator[None]:
    observability.configure_metrics(legacy_metrics=False)
    yield
    observability.configure_metrics(legacy_metrics=True)


async def test_without_legacy_metrics_only_knative_current_names_are_served(
        tmp_path: Path, receivers: tuple[Receiver, Receiver], no_legacy: None) -> None:
    async with running_stack(tmp_path) as stack:
        await _traffic(stack, *receivers)
        text = await _scrape(stack)
    assert "mt_broker_" not in text
    assert _series(text, "kn_eventing_dispatch_duration_seconds_count", messaging_destination_name="trigger:good.obs")


_PROMQL_WORDS = {"sum", "by", "without", "rate", "increase", "histogram_quantile", "label_values", "avg", "max",
                 "min", "count", "irate", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a label_values() variable query) reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                         # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                        # ranges
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)        # grouping labels
    expr = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,[^)]*\)", r"\1", expr)
    names = set(re.findall(r"(?<![\w$.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", expr))
    return names - _PROMQL_WORDS


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            queries.append(query["query"])
    return queries


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (le, x) (rate(a_b_bucket{y=~"trigger:.*"}[5m])))') == \
        {"a_b_bucket"}
    assert metric_names("label_values(kn_x_count, kn_broker_namespace)") == {"kn_x_count"}


async def test_every_metric_the_grafana_dashboard_queries_is_served(
        tmp_path: Path, receivers: tuple[Receiver, Receiver]) -> None:
    async with running_stack(tmp_path) as stack:
        await _traffic(stack, *receivers)
        text = await _scrape(stack)
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    # A labelled family with no series yet (no restart so far) is declared by its TYPE line.
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        served |= {f"{family}_{s}" for s in ("bucket", "sum", "count")} if kind == "histogram" else {family}
    queried = set().union(*(metric_names(q) for q in _dashboard_queries()))
    assert "kn_eventing_dispatch_duration_seconds_bucket" in queried
    assert queried - served == set()


async def test_a_deleted_trigger_or_broker_leaves_metrics_and_one_made_again_counts_afresh(
        tmp_path: Path, receivers: tuple[Receiver, Receiver]) -> None:
    ok, _ = receivers
    async with running_stack(tmp_path) as stack:
        await stack.apply(broker("gone", "churn"), trigger("t", ok.url, namespace="churn", broker="gone"),
                          broker("kept", "churn"), trigger("t2", ok.url, namespace="churn", broker="kept"))
        for path, i in (("/churn/gone", "g1"), ("/churn/kept", "k1")):
            assert await stack.send(path, event(i, type_="churn.type")) == 202
        await ok.wait_for(2)
        text = await _scrape(stack)
        trigger_series = {"messaging_destination_name": "trigger:t.churn"}
        assert _series(text, "kn_eventing_dispatch_duration_seconds_count", **trigger_series)
        assert _series(text, "mt_broker_filter_event_count_total", trigger_name="t", namespace_name="churn")

        await stack.delete("triggers", "churn", "t")
        text = await _scrape(stack)
        assert not _series(text, "kn_eventing_dispatch_duration_seconds_count", **trigger_series)
        assert not _series(text, "mt_broker_filter_event_count_total", trigger_name="t", namespace_name="churn")
        assert _series(text, "kn_eventing_dispatch_duration_seconds_count", kn_broker_name="gone")  # its ingress

        await stack.delete("brokers", "churn", "gone")
        text = await _scrape(stack)
        for name in ("kn_eventing_dispatch_duration_seconds_count", "kn_eventing_process_duration_seconds_count"):
            assert not _series(text, name, kn_broker_name="gone", kn_broker_namespace="churn")
        assert not _series(text, "mt_broker_ingress_event_count_total", broker_name="gone", namespace_name="churn")
        kept = {"messaging_destination_name": "trigger:t2.churn"}
        assert _series(text, "kn_eventing_dispatch_duration_seconds_count", **kept)

        await stack.apply(broker("gone", "churn"))
        assert await stack.send("/churn/gone", event("g2", type_="churn.type")) == 202
        text = await _scrape(stack)
        [again] = _series(text, "mt_broker_ingress_event_count_total", broker_name="gone", namespace_name="churn",
                          response_code="202")
        assert again.endswith(" 1.0")
