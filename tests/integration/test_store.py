"""The SQLite store keeps the Kubernetes API's promises: versions, conflicts, finalizers, watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from control.reconcilers.writes import Writes
from control.store.base import Expired, ResourceStore, WatchEvent, Write, get_all, write_all
from control.store.sqlite import SqliteStore
from core.errors import Conflict, InvalidResource, NotFound


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "nerve.db")
    try:
        yield s
    finally:
        await s.close()


def cm(name: str, namespace: str = "ns1", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data}


async def test_every_write_gets_a_new_version_and_the_server_fields(store: SqliteStore) -> None:
    created = await store.create(cm("a", x="1"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert isinstance(meta["resourceVersion"], str)
    updated = await store.update({**created, "data": {"x": "2"}})
    assert updated["metadata"]["resourceVersion"] != meta["resourceVersion"]
    assert updated["metadata"]["generation"] == 2
    assert updated["metadata"]["uid"] == meta["uid"]
    labelled = await store.update({**updated, "metadata": {**updated["metadata"], "labels": {"l": "v"}}})
    assert labelled["metadata"]["generation"] == 2  # metadata changes do not bump the generation
    assert await store.get("ConfigMap", "ns1", "a") == labelled
    # A write that changes nothing keeps the version, as the API server's no-op update does.
    assert (await store.update(labelled))["metadata"]["resourceVersion"] == labelled["metadata"]["resourceVersion"]


async def test_a_stale_resource_version_is_a_conflict(store: SqliteStore) -> None:
    first = await store.create(cm("a", x="1"))
    await store.update({**first, "data": {"x": "2"}})
    with pytest.raises(Conflict, match="changed by someone else"):
        await store.update({**first, "data": {"x": "3"}})
    with pytest.raises(Conflict):
        await store.update_status({**first, "status": {"seen": True}})
    current = await store.get("ConfigMap", "ns1", "a")
    assert current is not None and current["data"] == {"x": "2"} and current["status"] == {}
    # Without a resourceVersion the write is unconditional, as a Kubernetes PUT without one.
    unconditional = {**first, "metadata": {k: v for k, v in first["metadata"].items() if k != "resourceVersion"}}
    assert (await store.update({**unconditional, "data": {"x": "4"}}))["data"] == {"x": "4"}


async def test_status_and_spec_are_written_separately(store: SqliteStore) -> None:
    obj = await store.create(cm("a", x="1"))
    with_status = await store.update_status({**obj, "data": {"x": "ignored"}, "status": {"ok": True}})
    assert with_status["status"] == {"ok": True} and with_status["data"] == {"x": "1"}
    respec = await store.update({**with_status, "data": {"x": "2"}, "status": {"ignored": True}})
    assert respec["status"] == {"ok": True}


async def test_a_status_write_is_one_version_seen_whole_by_get_list_and_watch(store: SqliteStore) -> None:
    obj = await store.create(cm("a", x="1"))
    events = store.watch("ConfigMap", resource_version=obj["metadata"]["resourceVersion"])
    try:
        written = await store.update_status({**obj, "status": {"ok": True}})
        event = await asyncio.wait_for(anext(events), 5)
    finally:
        await events.aclose()
    assert written["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
    version = written["metadata"]["resourceVersion"]
    assert written == {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}, "status": {"ok": True}}
    assert event.type == "MODIFIED" and event.object == written
    assert await store.get("ConfigMap", "ns1", "a") == written
    assert (await store.list("ConfigMap")).items == [written]
    # The same status again is no write; the version it replaced is stale for the next one.
    assert await store.update_status({**written, "status": {"ok": True}}) == written
    with pytest.raises(Conflict, match="changed by someone else"):
        await store.update_status({**obj, "status": {"ok": False}})
    # A spec update after it keeps the status and carries on from its version.
    respec = await store.update({**written, "data": {"x": "2"}})
    assert respec["status"] == {"ok": True} and respec["data"] == {"x": "2"}
    assert await store.get("ConfigMap", "ns1", "a") == respec


async def test_create_update_and_delete_refuse_what_they_cannot_do(store: SqliteStore) -> None:
    await store.create(cm("a"))
    with pytest.raises(Conflict, match="already exists"):
        await store.create(cm("a"))
    with pytest.raises(NotFound):
        await store.update(cm("missing"))
    with pytest.raises(NotFound):
        await store.delete("ConfigMap", "ns1", "missing")
    assert await store.delete("ConfigMap", "ns1", "a") is None
    assert await store.get("ConfigMap", "ns1", "a") is None


async def test_finalizers_hold_a_deleted_object_until_they_are_removed(store: SqliteStore) -> None:
    obj = cm("a")
    obj["metadata"]["finalizers"] = ["example.dev/cleanup"]
    await store.create(obj)
    marked = await store.delete("ConfigMap", "ns1", "a")
    assert marked is not None and marked["metadata"]["deletionTimestamp"]
    again = await store.delete("ConfigMap", "ns1", "a")
    assert again is not None and again["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    listed = (await store.list("ConfigMap")).items
    assert [o["metadata"]["name"] for o in listed] == ["a"]
    with pytest.raises(Conflict, match="being deleted"):
        await store.create(cm("a"))
    with pytest.raises(InvalidResource, match="no new finalizers"):
        await store.update({**marked, "metadata": {**marked["metadata"],
                                                   "finalizers": ["example.dev/cleanup", "another"]}})
    await store.update({**marked, "metadata": {**marked["metadata"], "finalizers": []}})
    assert await store.get("ConfigMap", "ns1", "a") is None


async def test_a_batch_is_stored_whole_or_not_at_all(store: SqliteStore) -> None:
    await store.create(cm("exists"))
    with pytest.raises(Conflict):
        await write_all(store, [Write("create", cm("new")), Write("create", cm("exists"))])
    assert await store.get("ConfigMap", "ns1", "new") is None
    written = await write_all(store, [Write("create", cm("new")), Write("create", cm("other"))])
    assert [o["metadata"]["name"] for o in written] == ["new", "other"]


async def _take(events: AsyncIterator[WatchEvent], n: int) -> list[tuple[str, str]]:
    out = []
    async for event in events:
        out.append((event.type, event.object["metadata"]["name"]))
        if len(out) == n:
            break
    return out


async def test_watch_follows_changes_from_a_listed_version(store: ResourceStore) -> None:
    await store.create(cm("before"))
    listed = await store.list("ConfigMap")
    events = store.watch("ConfigMap", resource_version=listed.resource_version)
    watching = asyncio.ensure_future(_take(events, 4))
    created = await store.create(cm("a"))
    await store.create(cm("other-ns", namespace="ns2"))
    await store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "not-watched"}})
    await store.update({**created, "data": {"x": "1"}})
    await store.delete("ConfigMap", "ns1", "a")
    assert await asyncio.wait_for(watching, 5) == [
        ("ADDED", "a"), ("ADDED", "other-ns"), ("MODIFIED", "a"), ("DELETED", "a")]
    # Without a version: the current objects first, as ADDED; one namespace only.
    assert await asyncio.wait_for(_take(store.watch("ConfigMap", "ns1"), 1), 5) == [("ADDED", "before")]


async def test_watch_from_a_version_no_longer_kept_is_expired(tmp_path: Path) -> None:
    from control.store import sqlite

    store = SqliteStore(tmp_path / "small.db")
    try:
        first = await store.create(cm("a", n="0"))
        obj = first
        for i in range(sqlite.CHANGES_KEPT + 100):
            obj = await store.update({**obj, "data": {"n": str(i + 1)}})
        with pytest.raises(Expired):
            await _take(store.watch("ConfigMap", resource_version=first["metadata"]["resourceVersion"]), 1)
    finally:
        await store.close()


async def test_objects_and_versions_survive_a_reopen(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nerve.db")
    created = await store.create(cm("a"))
    await store.close()
    store = SqliteStore(tmp_path / "nerve.db")
    try:
        assert await store.get("ConfigMap", "ns1", "a") == created
        later = await store.create(cm("b"))
        assert int(later["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    finally:
        await store.close()


def _old_store(path: Path, **metadata: Any) -> Path:
    """A store as an older Nerve wrote it (no resourceVersion column), holding ConfigMap ns1/old."""
    import sqlite3

    import orjson

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE resources (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, "
               "body BLOB NOT NULL, status BLOB NOT NULL, PRIMARY KEY (kind, namespace, name))")
    body = {**cm("old", x="1"), "metadata": {"name": "old", "namespace": "ns1", "uid": "u1", "generation": 3,
                                             "creationTimestamp": "2025-01-01T00:00:00Z", **metadata}}
    db.execute("INSERT INTO resources VALUES (?, ?, ?, ?, ?)",
               ("ConfigMap", "ns1", "old", orjson.dumps(body), orjson.dumps({"ok": True})))
    db.commit()
    db.close()
    return path


async def test_a_store_written_before_resource_versions_opens_and_updates(tmp_path: Path) -> None:
    store = SqliteStore(_old_store(tmp_path / "old.db"))
    try:
        old = await store.get("ConfigMap", "ns1", "old")
        assert old is not None and old["status"] == {"ok": True} and old["metadata"]["uid"] == "u1"
        updated = await store.update({**old, "data": {"x": "2"}})
        assert updated["metadata"]["generation"] == 4 and updated["metadata"]["resourceVersion"] != "0"
        assert await store.get("ConfigMap", "ns1", "old") == updated
    finally:
        await store.close()


async def test_a_status_write_on_a_row_written_before_the_version_column(tmp_path: Path) -> None:
    store = SqliteStore(_old_store(tmp_path / "old.db", resourceVersion="7"))
    try:
        old = await store.get("ConfigMap", "ns1", "old")
        assert old is not None and old["metadata"]["resourceVersion"] == "7"
        with pytest.raises(Conflict):
            await store.update_status({**old, "metadata": {**old["metadata"], "resourceVersion": "6"}})
        status = await store.update_status({**old, "status": {"ok": False}})
        assert status["status"] == {"ok": False} and status["data"] == {"x": "1"}
        assert status["metadata"]["resourceVersion"] != "7"
        assert await store.get("ConfigMap", "ns1", "old") == status
        with pytest.raises(Conflict):
            await store.update_status({**old, "status": {"ok": None}})  # "7" is stale now
    finally:
        await store.close()


# ------------------------------------------------------------ Writes.ensure_child: a parent's generated children


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


async def test_objects_read_at_once_are_what_a_get_of_each_answers(store: SqliteStore) -> None:
    # More names of one namespace than one SELECT binds, another namespace, a cluster-scoped kind, and absent keys.
    for i in range(1000):
        await store.create(cm(f"c{i:04d}"))
    await store.create(cm("elsewhere", namespace="ns2"))
    await store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns2"}})
    keys = [*(("ConfigMap", "ns1", f"c{i:04d}") for i in range(0, 1010, 3)), ("ConfigMap", "ns2", "elsewhere"),
            ("ConfigMap", "ns2", "c0001"), ("Namespace", "", "ns2"), ("Namespace", "", "absent"),
            ("Trigger", "ns1", "x")]

    async def one_by_one() -> dict[tuple[str, str, str], dict[str, Any]]:
        return {key: obj for key in keys if (obj := await store.get(*key)) is not None}

    found = await get_all(store, keys)
    assert found == await one_by_one() and len(found) == 336
    # Inside a pass, with status writes buffered and not yet sent: seen as every other read sees them.
    with store.grouped():
        listed = (await store.list("ConfigMap", "ns1")).items
        await Writes(store).status(listed[0], {"seen": True})
        assert await get_all(store, keys) == await one_by_one()
        assert (await get_all(store, [("ConfigMap", "ns1", "c0000")]))[("ConfigMap", "ns1", "c0000")] == listed[0]
    # Each a copy of its own: changing one changes nothing stored.
    found[("ConfigMap", "ns1", "c0000")]["data"]["x"] = "changed"
    assert (await store.get("ConfigMap", "ns1", "c0000") or {})["data"] == {}


async def test_grouped_writes_commit_once_and_a_failed_one_leaves_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "nerve.db"
    store = SqliteStore(path)
    a = await store.create(cm("a", x="1"))
    with store.grouped():
        b = await store.create(cm("b", x="1"))
        with pytest.raises(Conflict):
            await store.update({**a, "metadata": {**a["metadata"], "resourceVersion": "999"}, "data": {"x": "lost"}})
        with pytest.raises(Conflict):  # a batch inside the group is still all or nothing
            await write_all(store, [Write("create", cm("c")), Write("create", cm("b"))])
        await store.update_status({**b, "status": {"seen": True}})
        # Visible inside the group at once; not yet to another connection (nothing committed).
        assert (await store.get("ConfigMap", "ns1", "b") or {})["status"] == {"seen": True}
        other = SqliteStore(path)
        assert await other.get("ConfigMap", "ns1", "b") is None
        await other.close()
    await store.close()
    reopened = SqliteStore(path)
    try:
        names = [o["metadata"]["name"] for o in (await reopened.list("ConfigMap")).items]
        assert names == ["a", "b"]  # c rolled back with its batch, a untouched by the failed update
        assert (await reopened.get("ConfigMap", "ns1", "a") or {})["data"] == {"x": "1"}
        assert (await reopened.get("ConfigMap", "ns1", "b") or {})["status"] == {"seen": True}
    finally:
        await reopened.close()


async def test_a_grouped_pass_buffers_its_status_writes_yet_every_read_and_watcher_sees_each(tmp_path: Path) -> None:
    path = tmp_path / "nerve.db"
    store = SqliteStore(path)
    created = [await store.create(cm(f"o{i}")) for i in range(5)]
    watched = store.watch("ConfigMap", resource_version=created[-1]["metadata"]["resourceVersion"])
    statements: list[str] = []
    try:
        with store.grouped():
            objs = (await store.list("ConfigMap")).items
            writes = Writes(store)
            store._db.set_trace_callback(statements.append)
            for i, obj in enumerate(objs[:3]):
                await writes.status(obj, {"seen": i})
            assert statements == []  # buffered: no statement yet, and none to read the rows for their versions
            store._db.set_trace_callback(None)
            versions = [int(o["metadata"]["resourceVersion"]) for o in objs[:3]]
            assert versions == sorted(versions) and len(set(versions)) == 3
            # Every read within the pass sees them: get, list, and the objects the pass holds.
            assert [(await store.get("ConfigMap", "ns1", f"o{i}") or {}).get("status") for i in range(3)] == \
                [{"seen": 0}, {"seen": 1}, {"seen": 2}]
            assert await store.get("ConfigMap", "ns1", "o0") == objs[0]
            # A write carrying a version that lost the race is refused and skipped, as without a group.
            with pytest.raises(Conflict):
                await store.update_status({**created[1], "status": {"lost": True}})
            writes.again = False
            await writes.status(created[1], {"lost": True})
            assert writes.again and (await store.get("ConfigMap", "ns1", "o1") or {})["status"] == {"seen": 1}
            # A write of another kind in between (written at once) is numbered after the buffered ones, and a
            # status write after it after that.
            await writes.status(objs[3], {"seen": 3})
            other = await store.create(cm("late"))
            await writes.status(objs[4], {"seen": 4})
            assert int(objs[3]["metadata"]["resourceVersion"]) < int(other["metadata"]["resourceVersion"]) < \
                int(objs[4]["metadata"]["resourceVersion"])
            assert [o["status"] for o in (await store.list("ConfigMap")).items] == \
                [{}, {"seen": 0}, {"seen": 1}, {"seen": 2}, {"seen": 3}, {"seen": 4}]
            # A status write that changes nothing makes no version.
            same = await store.update_status(objs[4])
            assert same["metadata"]["resourceVersion"] == objs[4]["metadata"]["resourceVersion"]
        seen = [await asyncio.wait_for(anext(watched), 5) for _ in range(6)]
    finally:
        await watched.aclose()
    assert [(e.type, e.object["metadata"]["name"], e.object["status"]) for e in seen] == [
        ("MODIFIED", "o0", {"seen": 0}), ("MODIFIED", "o1", {"seen": 1}), ("MODIFIED", "o2", {"seen": 2}),
        ("MODIFIED", "o3", {"seen": 3}), ("ADDED", "late", {}), ("MODIFIED", "o4", {"seen": 4})]
    assert [e.object["metadata"]["resourceVersion"] for e in seen] == [
        *(o["metadata"]["resourceVersion"] for o in objs[:4]), other["metadata"]["resourceVersion"],
        objs[4]["metadata"]["resourceVersion"]]
    await store.close()
    reopened = SqliteStore(path)
    try:
        stored = {o["metadata"]["name"]: o for o in (await reopened.list("ConfigMap")).items}
        assert [stored[f"o{i}"] for i in range(5)] == objs  # committed as the pass saw them, versions too
        after = await reopened.create(cm("next"))
        assert int(after["metadata"]["resourceVersion"]) > int(objs[4]["metadata"]["resourceVersion"])
    finally:
        await reopened.close()


async def test_a_grouped_pass_trims_the_change_log_as_writes_one_by_one_do(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nerve.db")
    try:
        with store.grouped():
            for i in range(30):
                await store.create(cm(f"o{i}"))
            objs = (await store.list("ConfigMap")).items
            for round_ in range(40):  # 1,200 buffered writes: past CHANGES_KEPT
                for obj in objs:
                    await Writes(store).status(obj, {"round": round_})
        last = int(objs[-1]["metadata"]["resourceVersion"])
        oldest = store._db.execute("SELECT MIN(rv), COUNT(*) FROM changes").fetchone()
        assert oldest == (last - last % 100 - 1000 + 1, last - (last - last % 100 - 1000))
        with pytest.raises(Expired):
            await anext(store.watch("ConfigMap", resource_version="5"))
    finally:
        await store.close()


async def test_a_batch_logs_its_changes_as_its_writes_one_by_one_do(tmp_path: Path) -> None:
    # A batch's changes are logged at its end, leaving out those trimmed by then: the log, its last id and what a
    # watcher reads are as 1,234 creates and an update one by one leave them.
    batched, single = SqliteStore(tmp_path / "a.db"), SqliteStore(tmp_path / "b.db")
    try:
        for store in (batched, single):
            for i in range(50):
                await store.create(cm(f"before{i}"))
        first = await batched.create(cm("changed"))
        await single.create(cm("changed"))
        watched = batched.watch("ConfigMap", resource_version=first["metadata"]["resourceVersion"])
        writes = [*(Write("create", cm(f"o{i:04d}")) for i in range(1234)),
                  Write("update", {**first, "data": {"x": "2"}}), Write("create", cm("last"))]
        out = await write_all(batched, writes)
        one_by_one = [await (single.create(w.object) if w.op == "create" else single.update(w.object)) for w in writes]
        assert [o["metadata"]["resourceVersion"] for o in out] == [o["metadata"]["resourceVersion"] for o in one_by_one]

        def log(store: SqliteStore) -> list[tuple[Any, ...]]:
            rows = store._db.execute("SELECT rv, kind, namespace, type, object FROM changes ORDER BY rv").fetchall()
            return [(rv, kind, ns, type_, orjson.loads(obj)["metadata"]["name"]) for rv, kind, ns, type_, obj in rows]

        assert log(batched) == log(single) and len(log(batched)) == 1000 + 1287 % 100
        assert batched._revision() == single._revision() == 1287
        # What the log holds of each is the object as stored.
        rv, _, _, _, logged = batched._db.execute("SELECT * FROM changes ORDER BY rv DESC LIMIT 1").fetchone()
        assert {**orjson.loads(logged), "metadata": {**orjson.loads(logged)["metadata"], "resourceVersion": str(rv)}} \
            == await batched.get("ConfigMap", "ns1", "last")
        with pytest.raises(Expired):  # the watcher fell behind the trimming, as it would have one by one
            await asyncio.wait_for(anext(watched), 5)
        after = await batched.create(cm("after"))
        assert after["metadata"]["resourceVersion"] == "1288"
    finally:
        await batched.close()
        await single.close()


def test_a_timestamp_is_the_clock_s_second_formatted_once_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from control.store import sqlite

    before = datetime.now(UTC).replace(microsecond=0)
    stamp = sqlite._now()
    assert before <= datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) <= datetime.now(UTC)
    clock = iter([1000.2, 1000.9, 1001.0, 1061.5])
    monkeypatch.setattr(sqlite.time, "time", lambda: next(clock))
    assert [sqlite._now() for _ in range(4)] == ["1970-01-01T00:16:40Z", "1970-01-01T00:16:40Z",
                                                 "1970-01-01T00:16:41Z", "1970-01-01T00:17:41Z"]


async def test_a_status_handed_over_returns_what_the_stored_row_parses_to(tmp_path: Path) -> None:
    # update_status_handed_over (a pass's Trigger statuses) makes the object it returns of the one given instead
    # of parsing the row back: it must equal the parse, keys in the same order, in a group and outside one.
    store = SqliteStore(tmp_path / "nerve.db")
    try:
        created = [await store.create({**cm(f"o{i}"), "metadata": {"name": f"o{i}", "namespace": "ns1",
                                                                    "labels": {"a": "b"}, "annotations": {"c": "d"}}})
                   for i in range(3)]
        # One updated first, so its stored body has a resourceVersion of its own, one before the row's rv.
        created[2] = await store.update({**created[2], "data": {"x": "y"}})
        with store.grouped():
            objs = (await store.list("ConfigMap")).items
            for i, obj in enumerate(objs):
                status = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}], "n": i}
                handed = await store.update_status_handed_over({**obj, "status": status})
                assert handed["status"] is status
                stored = await store.get("ConfigMap", "ns1", f"o{i}")
                assert handed == stored and orjson.dumps(handed) == orjson.dumps(stored)
            # A lost race is refused as by update_status.
            with pytest.raises(Conflict):
                await store.update_status_handed_over({**objs[0], "status": {"late": True}})
        current = await store.get("ConfigMap", "ns1", "o1")
        assert current is not None
        outside = await store.update_status_handed_over({**current, "status": {"outside": True}})
        assert outside == await store.get("ConfigMap", "ns1", "o1")
    finally:
        await store.close()
