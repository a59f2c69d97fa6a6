"""Random manifests through the control API (issue 9, defect 13): whatever is posted, the answer is
never a 5xx, a refused request stores nothing, and what was stored can be read back.

Hypothesis builds each manifest from a valid Broker, Trigger, KafkaSource or ConfigMap and replaces
parts of it with arbitrary JSON (wrong types, deep nesting, odd strings, durations, huge numbers).
Bounded: 500 cases against an embedded stack on loopback.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.stack import Stack, running_stack

KINDS = ("brokers", "triggers", "kafkasources", "configmaps", "services", "namespaces")

_BASES: list[dict[str, Any]] = [
    {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "b", "namespace": "fz"},
     "spec": {"delivery": {"retry": 2, "backoffDelay": "PT0.2S", "deadLetterSink": {"uri": "http://127.0.0.1:9/"}}}},
    {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "t", "namespace": "fz"},
     "spec": {"broker": "b", "subscriber": {"uri": "http://127.0.0.1:9/"}, "filter": {"attributes": {"type": "x"}},
              "filters": [{"any": [{"exact": {"type": "a"}}, {"not": {"prefix": {"source": "/s"}}}]}],
              "delivery": {"timeout": "PT1S", "retry": 1}}},
    {"apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource", "metadata": {"name": "k", "namespace": "fz"},
     "spec": {"bootstrapServers": ["127.0.0.1:9"], "topics": ["t"], "sink": {"uri": "http://127.0.0.1:9/"}}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "fz"}, "data": {"a": "b"}},
]

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from(["", "default\n", "a/b", "P9999999999D", "PT0.2S", "P1Y", "-PT1S", "ns1", "b", "t",
                     "http://127.0.0.1:9/", "/relative", "exact", "cesql", "KafkaSource", "v1"]),
)
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)


def _deep(levels: int, as_list: bool) -> Any:
    node: Any = {}
    for _ in range(levels):
        node = [node] if as_list else {"all": [node]}
    return node


_VALUES = st.one_of(_JSON, st.builds(_deep, st.integers(min_value=1, max_value=400), st.booleans()))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


@st.composite
def manifests(draw: st.DrawFn) -> Any:
    manifest = copy.deepcopy(draw(st.sampled_from(_BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(manifest)))
        manifest = _replace(manifest, path, draw(_VALUES))
    return manifest


async def _count(stack: Stack) -> dict[str, int]:
    counts = {}
    for kind in KINDS:
        async with stack.session.get(f"{stack.api}/api/v1/resources/{kind}") as r:
            assert r.status == 200, await r.text()
            counts[kind] = len((await r.json())["items"])
    return counts


async def _probe(stack: Stack, items: list[Any]) -> None:
    before = await _count(stack)
    async with stack.session.post(f"{stack.api}/api/v1/apply", json={"items": items}) as r:
        body = await r.json()
        assert r.status < 500, (items, body)
    if r.status == 400:
        assert body.get("reason"), body
        assert await _count(stack) == before, ("a refused request changed the store", items, body)
        return
    assert r.status == 200, body
    for item in body["items"]:
        kind = f'{item["kind"].lower()}s'
        url = f'{stack.api}/api/v1/resources/{kind}/{item["namespace"] or "-"}/{item["name"]}'
        async with stack.session.get(url) as got:
            assert got.status == 200, (item, await got.text())


async def test_random_manifests_never_get_a_5xx_and_keep_the_store_consistent(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        loop = asyncio.get_running_loop()

        @settings(max_examples=500, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(st.lists(manifests(), min_size=1, max_size=2))
        def run(items: list[Any]) -> None:
            asyncio.run_coroutine_threadsafe(_probe(stack, items), loop).result(timeout=30)

        await asyncio.to_thread(run)
