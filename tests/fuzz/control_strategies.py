"""Hypothesis strategies for control-API requests: manifests of every kind Nerve knows, mostly plausible,
then broken the ways a user or an attacker breaks them: wrong JSON types anywhere, deep nesting, huge
durations, trailing newlines in names, random CESQL.

Everything that names a network address names a loopback one (or a malformed one), so a fuzzed
Kafka Broker, KafkaSource or subscriber never makes Nerve reach beyond this machine.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

EVENTING = "eventing.knative.dev/v1"
LOOPBACK_URLS = ["http://127.0.0.1:9/", "http://localhost:9/x", "http://127.0.0.1:1/a?b=c", "https://127.0.0.1:9/"]
LOOPBACK_KAFKA = ["127.0.0.1:1", "localhost:1", "127.0.0.1:0", "127.0.0.1:99999", ":::", ""]

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
json_any = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=5)

name = st.one_of(
    st.sampled_from(["default", "a", "b-c", "a-b", "x" * 63, "x" * 64, "default\n", "Default", "-a", "a-", "a.b",
                     "a_b", "\u00e9", "", " default", "default ", "a\nb", "default\r\n"]),
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True),
)
namespace = st.one_of(st.sampled_from(["fz", "fz", "fz2", "fz\n", "FZ", "", "kube-system", "a" * 64]), name)

DURATIONS = ["PT1S", "PT0.2S", "PT0S", "P9999999999D", "PT99999999999999999999S", "P1Y", "PT-1S", "-PT1S", "1s",
             "PT1S\n", "P", "PT", "P1DT1H1M1.5S", "PT1e400S", "PT0.0000000000001S", "P1W", "P99999999Y"]
duration = st.one_of(st.sampled_from(DURATIONS), json_any)

CESQL = ["type = 'a'", "type LIKE '%/orders/%/items/%'", "EXISTS id", "NOT EXISTS x", "source LIKE 'a\\%'",
         "1 = 1", "type IN ('a', 'b')", "ABS(-1) = 1", "UPPER(type) = 'A'", "type = ", "'unterminated", "((", ")",
         "TRUE AND", "CONCAT(type, source) = 'x'", "type = 'a' OR", "1 / 0 = 1", "INT('x') = 1", "", "\n", "type\n"]


@st.composite
def cesql(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["known", "text", "deep", "long-or", "long-and", "combined"]))
    if shape == "known":
        return draw(st.sampled_from(CESQL))
    if shape == "text":
        return draw(st.text(max_size=40))
    if shape == "deep":
        depth = draw(st.sampled_from([10, 100, 250, 480, 500, 1000, 3000]))
        return "(" * depth + "TRUE" + ")" * depth if draw(st.booleans()) else "NOT " * depth + "TRUE"
    if shape in ("long-or", "long-and"):
        count = draw(st.sampled_from([10, 200, 1000, 3000]))
        word = " OR " if shape == "long-or" else " AND "
        return word.join(["type = 'a'"] * count)
    return f"{draw(st.sampled_from(CESQL))} {draw(st.sampled_from(['AND', 'OR', '']))} {draw(st.sampled_from(CESQL))}"


def _deep(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"all": [value]} if depth % 2 else [value]
    return value


@st.composite
def dialect_filter(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["exact", "prefix", "suffix", "cesql", "all", "any", "not", "deep", "junk"]))
    if kind in ("exact", "prefix", "suffix"):
        return {kind: draw(st.dictionaries(st.one_of(name, st.text(max_size=6)), st.one_of(st.text(max_size=8),
                                                                                         json_any), max_size=2))}
    if kind == "cesql":
        return {"cesql": draw(st.one_of(cesql(), json_any))}
    if kind in ("all", "any"):
        return {kind: draw(st.lists(st.sampled_from([{"exact": {"type": "a"}}, {"cesql": "TRUE"}, 1, None]),
                                    max_size=3))}
    if kind == "not":
        return {"not": draw(st.sampled_from([{"exact": {"type": "a"}}, [], "x", None]))}
    if kind == "deep":
        depth = draw(st.sampled_from([50, 250, 300, 1000]))
        leaf: dict[str, Any] = {"exact": {"type": "a"}}
        for _ in range(depth):
            leaf = {"not": leaf} if draw(st.booleans()) else {"all": [leaf]}
        return leaf
    return draw(json_any)


def delivery() -> st.SearchStrategy[Any]:
    return st.one_of(json_any, st.fixed_dictionaries({}, optional={
        "retry": st.one_of(st.integers(-5, 10**12), json_any),
        "backoffPolicy": st.one_of(st.sampled_from(["linear", "exponential", "Linear", ""]), json_any),
        "backoffDelay": duration, "timeout": duration, "retryAfterMax": duration,
        "deadLetterSink": st.one_of(st.fixed_dictionaries({"uri": st.sampled_from(LOOPBACK_URLS)}), json_any),
    }))


def destination() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"uri": st.one_of(st.sampled_from([*LOOPBACK_URLS, "not a url", "ftp://127.0.0.1/",
                                                                               "", "/relative", "http://"]),
                                                json_any)}),
        st.fixed_dictionaries({"ref": st.fixed_dictionaries({
            "apiVersion": st.sampled_from(["v1", "serving.knative.dev/v1", EVENTING, "x"]),
            "kind": st.sampled_from(["Service", "Broker", "Nope"]), "name": name}, optional={"namespace": namespace})},
            optional={"uri": st.sampled_from(["/path", "x"])}),
        json_any,
    )


def metadata() -> st.SearchStrategy[Any]:
    plausible = st.fixed_dictionaries({"name": name, "namespace": namespace}, optional={
        "annotations": st.one_of(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=2), json_any),
        "labels": st.one_of(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=2), json_any),
        "resourceVersion": json_any, "generation": json_any, "finalizers": json_any, "uid": json_any,
    })
    return st.one_of(plausible, plausible, plausible, json_any)


def _spec(kind: str) -> st.SearchStrategy[Any]:
    if kind == "Broker":
        return st.fixed_dictionaries({}, optional={"delivery": delivery(), "config": json_any})
    if kind == "Trigger":
        return st.fixed_dictionaries({"broker": name, "subscriber": destination()}, optional={
            "filter": st.one_of(st.fixed_dictionaries({"attributes": st.dictionaries(
                st.one_of(name, st.text(max_size=8)), st.one_of(st.text(max_size=8), json_any), max_size=3)}),
                json_any),
            "filters": st.one_of(st.lists(dialect_filter(), max_size=3), json_any),
            "delivery": delivery()})
    if kind == "KafkaSource":
        return st.fixed_dictionaries({"sink": destination()}, optional={
            "bootstrapServers": st.one_of(st.lists(st.sampled_from(LOOPBACK_KAFKA), max_size=2), json_any),
            "topics": st.one_of(st.lists(st.one_of(name, st.text(max_size=8)), max_size=2), json_any),
            "consumerGroup": st.one_of(name, json_any), "consumers": json_any, "initialOffset": json_any,
            "delivery": delivery()})
    if kind == "ConfigMap":
        return json_any  # ConfigMap has no spec: a spec there is an unknown field
    return st.one_of(st.none(), json_any)


API_VERSIONS = {"Broker": [EVENTING], "Trigger": [EVENTING],
                "KafkaSource": ["sources.knative.dev/v1", "sources.knative.dev/v1beta1"],
                "ConfigMap": ["v1"], "Service": ["v1", "serving.knative.dev/v1"], "Namespace": ["v1"]}


@st.composite
def manifest(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from([*API_VERSIONS, "Nope", "brokers"]))
    obj: dict[str, Any] = {
        "apiVersion": draw(st.sampled_from(API_VERSIONS.get(kind, ["v1", "x/y", ""]))),
        "kind": kind,
        "metadata": draw(metadata()),
    }
    if isinstance(obj["metadata"], dict) and kind == "Broker" and draw(st.booleans()):
        annotations = obj["metadata"].setdefault("annotations", {})
        if isinstance(annotations, dict):
            annotations["eventing.knative.dev/broker.class"] = draw(st.sampled_from(
                ["MTChannelBasedBroker", "Kafka", "NatsJetStreamBroker", "Other", "", "Kafka\n"]))
    if kind == "ConfigMap":
        obj["data"] = draw(st.one_of(
            st.dictionaries(st.sampled_from(["bootstrap.servers", "default.topic.partitions", "sasl.password", "x"]),
                            st.one_of(st.sampled_from(LOOPBACK_KAFKA), st.text(max_size=8)), max_size=3), json_any))
    elif kind == "Service" and isinstance(obj["metadata"], dict):
        obj["metadata"]["annotations"] = {"nerve.dev/url": draw(st.one_of(st.sampled_from(LOOPBACK_URLS), json_any))}
    if draw(st.integers(0, 3)):
        obj["spec"] = draw(_spec(kind))
    if draw(st.integers(0, 14)) == 0:
        obj["spec"] = _deep(draw(st.sampled_from([100, 250, 300, 1000])), {"x": 1})
    if draw(st.integers(0, 14)) == 0:
        del obj[draw(st.sampled_from(["apiVersion", "kind", "metadata"]))]
    if draw(st.integers(0, 19)) == 0:
        obj[draw(st.sampled_from(["apiVersion", "kind", "metadata"]))] = draw(json_any)
    return obj


_valid_name = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@st.composite
def plausible(draw: st.DrawFn) -> Any:
    """A Broker or Trigger that is valid but for (at most) one drawn part: most of these should be 200."""
    meta = {"name": draw(_valid_name), "namespace": "fz"}
    if draw(st.booleans()):
        spec: dict[str, Any] = {}
        if draw(st.booleans()):
            spec["delivery"] = {"retry": draw(st.integers(0, 5)), "backoffDelay": draw(duration)}
        return {"apiVersion": EVENTING, "kind": "Broker", "metadata": meta, "spec": spec}
    spec = {"broker": draw(_valid_name), "subscriber": {"uri": "http://127.0.0.1:9/"}}
    part = draw(st.sampled_from(["filters", "attributes", "cesql", "delivery", "none"]))
    if part == "filters":
        spec["filters"] = [draw(dialect_filter())]
    elif part == "attributes":
        spec["filter"] = {"attributes": {draw(st.sampled_from(["type", "source", "type\n", "x"])): "a"}}
    elif part == "cesql":
        spec["filters"] = [{"cesql": draw(cesql())}]
    elif part == "delivery":
        spec["delivery"] = draw(delivery())
    return {"apiVersion": EVENTING, "kind": "Trigger", "metadata": meta, "spec": spec}


apply_body = st.one_of(
    st.lists(plausible(), min_size=1, max_size=3).map(lambda items: {"items": items}),
    st.lists(plausible(), min_size=1, max_size=3).map(lambda items: {"items": items}),
    st.lists(manifest(), min_size=1, max_size=3).map(lambda items: {"items": items}),
    st.lists(manifest(), min_size=1, max_size=3).map(lambda items: {"items": items}),
    st.lists(manifest(), min_size=1, max_size=3).map(lambda items: {"items": items}),
    json_any.map(lambda v: {"items": v}),
    json_any,
)
