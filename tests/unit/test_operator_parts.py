"""The operator's pure parts (control/operator/): the webhooks' defaults patch and conversion, and the
watch loop's re-list after 410 Gone, on the real SQLite store."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from control.api.admission import AdmissionSettings, admit
from control.operator.cache import CachedStore, WatchCache
from control.operator.watch_loop import Key, WatchLoop
from control.operator.webhooks import convert, defaults_patch
from control.store.sqlite import SqliteStore
from core.errors import InvalidResource
from core.watch import ObjectList, WatchEvent


def apply_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 `add`, the only op the patch uses, as the API server applies it."""
    out = copy.deepcopy(obj)
    for op in ops:
        assert op["op"] == "add"
        *parents, last = op["path"].lstrip("/").split("/")
        target = out
        for part in parents:
            target = target[part]
        target[last] = op["value"]
    return out


TRIGGER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
           "metadata": {"name": "t", "namespace": "ns", "uid": "u1", "resourceVersion": "7"},
           "spec": {"broker": "default", "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "s"}}}}
BROKER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
          "metadata": {"name": "default", "namespace": "ns", "labels": {"team": "a"}}}


@pytest.mark.parametrize("manifest", [TRIGGER, BROKER], ids=["trigger", "broker"])
def test_the_patch_makes_the_object_what_admission_makes_of_it_and_keeps_server_metadata(
        manifest: dict[str, Any]) -> None:
    admitted = admit(copy.deepcopy(manifest), None, AdmissionSettings("Kafka")).obj
    patched = apply_patch(manifest, defaults_patch(manifest, admitted))
    assert {k: v for k, v in patched.items() if k != "metadata"} == {k: v for k, v in admitted.items()
                                                                     if k != "metadata"}
    for key in ("labels", "annotations"):
        assert patched["metadata"].get(key) == admitted["metadata"].get(key)
    # What the server owns is never patched: the uid and resourceVersion stay.
    assert {k: patched["metadata"][k] for k in ("uid", "resourceVersion") if k in manifest["metadata"]} == {
        k: manifest["metadata"][k] for k in ("uid", "resourceVersion") if k in manifest["metadata"]}
    # Admitted again, nothing is left to default.
    assert defaults_patch(patched, admit(copy.deepcopy(patched), None, AdmissionSettings("Kafka")).obj) == []


def test_a_broker_gets_the_class_annotation_and_a_trigger_the_broker_label() -> None:
    broker = apply_patch(BROKER, defaults_patch(BROKER, admit(copy.deepcopy(BROKER), None,
                                                              AdmissionSettings("Kafka")).obj))
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "Kafka"
    assert broker["metadata"]["labels"]["team"] == "a"
    trigger = apply_patch(TRIGGER, defaults_patch(TRIGGER, admit(copy.deepcopy(TRIGGER), None,
                                                                 AdmissionSettings()).obj))
    assert trigger["metadata"]["labels"] == {"eventing.knative.dev/broker": "default"}


PING_V1BETA2 = {"apiVersion": "sources.knative.dev/v1beta2", "kind": "PingSource",
                "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "3"},
                "spec": {"schedule": "* * * * *", "contentType": "application/json", "data": '{"a": 1}',
                         "sink": {"uri": "http://x"}}, "status": {"observedGeneration": 1}}


@pytest.mark.parametrize(("obj", "desired", "expected_spec"), [
    # v1beta1's jsonData is v1's data, application/json (Kind.convert, as embedded admission runs it).
    ({**PING_V1BETA2, "apiVersion": "sources.knative.dev/v1beta1",
      "spec": {"schedule": "* * * * *", "jsonData": '{"a": 1}', "sink": {"uri": "http://x"}}},
     "sources.knative.dev/v1", {"schedule": "* * * * *", "contentType": "application/json", "data": '{"a": 1}',
                                "sink": {"uri": "http://x"}}),
    (PING_V1BETA2, "sources.knative.dev/v1", PING_V1BETA2["spec"]),
    # Down to an older version: the shape the versions share, apiVersion rewritten.
    ({**PING_V1BETA2, "apiVersion": "sources.knative.dev/v1"}, "sources.knative.dev/v1beta2", PING_V1BETA2["spec"]),
], ids=["v1beta1-up", "v1beta2-up", "v1-down"])
def test_conversion(obj: dict[str, Any], desired: str, expected_spec: dict[str, Any]) -> None:
    converted = convert(obj, desired)
    assert converted["apiVersion"] == desired
    assert converted["spec"] == expected_spec
    assert converted["metadata"] == obj["metadata"] and converted["status"] == obj["status"]


def test_conversion_to_a_version_the_kind_has_not_is_refused() -> None:
    with pytest.raises(InvalidResource, match="cannot convert PingSource"):
        convert(PING_V1BETA2, "sources.knative.dev/v9")


class FirstListStale(SqliteStore):
    """The real store, whose first list answers with a version the watch then finds expired (410 Gone), as
    an API server does after etcd compacted it."""

    stale = True
    lists = 0

    async def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        listed = await super().list(kind, namespace)
        self.lists += 1
        if self.stale:
            self.stale = False
            return ObjectList(listed.items, "compacted")
        return listed


async def test_the_watch_loop_lists_again_after_410_and_reconciles_every_change(tmp_path: Path) -> None:
    store = FirstListStale(tmp_path / "db")
    seen: list[set[Key]] = []
    changed = asyncio.Event()

    async def reconcile(keys: set[Key]) -> None:
        seen.append(keys)
        changed.set()

    loop = WatchLoop(store, ["Broker"], reconcile, debounce_s=0.01)
    loop.start()
    try:
        broker = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                  "metadata": {"name": "b1", "namespace": "ns"}, "spec": {}}
        await store.create(broker)
        async with asyncio.timeout(10):
            while not any(("Broker", "ns", "b1") in keys for keys in seen):
                changed.clear()
                await changed.wait()
        assert store.lists == 2  # listed again after the expired watch, then watching
    finally:
        await loop.stop()
        await store.close()


async def test_a_failed_reconcile_is_retried_with_its_keys(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    calls: list[set[Key]] = []
    done = asyncio.Event()

    async def reconcile(keys: set[Key]) -> None:
        calls.append(keys)
        if len(calls) == 1:
            raise RuntimeError("the backend is away")
        done.set()

    loop = WatchLoop(store, [], reconcile, debounce_s=0.01, initial_backoff_s=0.05)
    loop.start()
    try:
        loop.queue(("Broker", "ns", "b1"))
        async with asyncio.timeout(5):
            await done.wait()
        assert calls[0] == {("Broker", "ns", "b1")} <= calls[1]
        assert loop.failures == 1
    finally:
        await loop.stop()
        await store.close()


async def test_a_status_change_of_the_clusters_own_kinds_does_not_reconcile(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    queued: list[set[Key]] = []
    woke = asyncio.Event()

    async def reconcile(keys: set[Key]) -> None:
        queued.append(keys)
        woke.set()

    async def settled() -> None:
        async with asyncio.timeout(5):
            await woke.wait()
        await asyncio.sleep(0.3)  # anything else this change queued has run too
        woke.clear()

    loop = WatchLoop(store, ["Service"], reconcile, status_blind=["Service"], debounce_s=0.01)
    service = await store.create({"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": "s", "namespace": "ns"}, "spec": {"ports": [{"port": 80}]}})
    loop.start()
    try:
        await settled()  # the first list
        queued.clear()
        service = await store.update_status({**service, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})
        await asyncio.sleep(0.5)
        assert queued == [] and loop.skipped == 1
        await store.update({**service, "metadata": {**service["metadata"], "annotations": {"nerve.dev/url": "http://x"}}})
        await settled()
        assert queued == [{("Service", "ns", "s")}]
    finally:
        await loop.stop()
        await store.close()


async def test_the_cache_answers_lists_once_listed_and_follows_writes_and_events(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    cache = WatchCache()
    cached = CachedStore(store, cache)
    try:
        first = await cached.create({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                     "metadata": {"name": "b", "namespace": "ns"}, "spec": {}})
        assert [o["metadata"]["name"] for o in (await cached.list("Broker")).items] == ["b"]  # not cached: the store
        cache.replace("Broker", await store.list("Broker"))
        # Written behind the cache's back: a list answers from the cache until the watch says so.
        other = await store.create({**first, "metadata": {"name": "a", "namespace": "ns"}})
        assert [o["metadata"]["name"] for o in (await cached.list("Broker")).items] == ["b"]
        cache.apply("Broker", WatchEvent("ADDED", other))
        assert [o["metadata"]["name"] for o in (await cached.list("Broker", "ns")).items] == ["a", "b"]
        # A write through it is seen at once; a late event older than the write does not undo it.
        updated = await cached.update_status({**first, "status": {"observedGeneration": 1}})
        cache.apply("Broker", WatchEvent("MODIFIED", first))
        listed = {o["metadata"]["name"]: o for o in (await cached.list("Broker")).items}
        assert listed["b"]["status"] == {"observedGeneration": 1} == updated["status"]
        # What a reconciler does to a listed object stays its own.
        listed["b"]["status"]["observedGeneration"] = 99
        assert (await cached.list("Broker")).items[1]["status"] == {"observedGeneration": 1}
        await cached.delete("Broker", "ns", "a")
        assert [o["metadata"]["name"] for o in (await cached.list("Broker")).items] == ["b"]
    finally:
        await store.close()


def test_a_kubeconfig_that_cannot_be_used_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "control", "--store", "kubernetes", "--kubeconfig",
                             str(tmp_path / "missing"), "--state-dir", str(tmp_path / "state")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"python -m control: --store kubernetes: cannot use --kubeconfig {tmp_path / 'missing'}: "
        "Invalid kube-config file. No configuration found."]
