"""Writes.ensure_child: what a parent (a Channel, a Sequence) generates is created, kept in line, and never
taken over from someone else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from control.reconcilers.writes import Writes
from control.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "nerve.db")
    try:
        yield s
    finally:
        await s.close()


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns1"}, "data": data}


def child(spec: dict[str, Any], **labels: str) -> dict[str, Any]:
    return {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel",
            "metadata": {"name": "c", "namespace": "ns1", "labels": labels}, "spec": spec}


async def test_a_child_is_created_owned_and_updated_only_where_it_differs(store: SqliteStore) -> None:
    owner = await store.create(cm("owner"))
    writes = Writes(store)
    created = await writes.ensure_child(owner, child({"delivery": {"retry": 1}}, app="x"), None)
    assert created is not None and writes.again
    [ref] = created["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("ConfigMap", "owner", owner["metadata"]["uid"],
                                                                         True)
    # Someone else's field (subscribers) is kept; an unchanged child is not written again.
    stored = await store.get("InMemoryChannel", "ns1", "c")
    assert stored is not None
    stored["spec"]["subscribers"] = [{"uid": "s1"}]
    stored = await store.update(stored)
    version = stored["metadata"]["resourceVersion"]
    same = await Writes(store).ensure_child(owner, child({"delivery": {"retry": 1}}, app="x"), stored,
                                            keep=("subscribers",))
    assert same is not None and same["metadata"]["resourceVersion"] == version
    # A changed spec is written, with the kept field carried over.
    writes = Writes(store)
    changed = await writes.ensure_child(owner, child({"delivery": {"retry": 3}}, app="x"), stored,
                                        keep=("subscribers",))
    assert changed is not None and writes.again
    after = await store.get("InMemoryChannel", "ns1", "c")
    assert after is not None
    assert after["spec"] == {"delivery": {"retry": 3}, "subscribers": [{"uid": "s1"}]}


async def test_an_object_the_owner_does_not_own_is_left_alone(store: SqliteStore) -> None:
    owner = await store.create(cm("owner"))
    theirs = await store.create(child({"delivery": {"retry": 9}}))
    assert await Writes(store).ensure_child(owner, child({}), theirs) is None
    kept = await store.get("InMemoryChannel", "ns1", "c")
    assert kept is not None and kept["spec"] == {"delivery": {"retry": 9}}
    assert "ownerReferences" not in kept["metadata"]
