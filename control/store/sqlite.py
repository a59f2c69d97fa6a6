"""SQLite resource store: one row per object, plus a change log that watches read.

resourceVersion is one counter for the whole store (as etcd's revision is for an API server): each
write appends a row to `changes` whose id becomes the object's resourceVersion, so a watch resumes from
any version still in the log. The log keeps the last `CHANGES_KEPT` writes; older versions are
`Expired`.

Sync under async: the standard library's sqlite3 is called directly from the event loop. Control is
the store's only writer, every statement touches one small row on a local file in WAL mode with
`synchronous=NORMAL` (a commit appends to the WAL without an fsync), so a call takes well under a
millisecond: less than handing it to a thread would cost, and it keeps a batch's transaction free of
interleaving (no await happens inside one).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from control.store.base import (
    EventType,
    Expired,
    ObjectList,
    ResourceStore,
    WatchEvent,
    Write,
    key_of,
)
from core.errors import Conflict, FieldError, InvalidResource, NotFound

CHANGES_KEPT = 1000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS resources (
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        body BLOB NOT NULL,
        status BLOB NOT NULL,
        PRIMARY KEY (kind, namespace, name)
    )""",
    """CREATE TABLE IF NOT EXISTS changes (
        rv INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        type TEXT NOT NULL,
        object BLOB NOT NULL
    )""",
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON: an orjson round trip, several times quicker than copy.deepcopy (and every
    stored object is JSON, it is written so)."""
    copied: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return copied


def _label(kind: str, namespace: str, name: str) -> str:
    where = f' in namespace "{namespace}"' if namespace else ""
    return f'{kind} "{name}"{where}'


def _outside_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """What a change of bumps metadata.generation: everything but metadata and status (spec, data)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _private_files(path: Path) -> None:
    """The database holds every manifest (ConfigMap credentials too): owner-only, 0600, created so before
    SQLite opens it (SQLite gives its -wal and -shm files the database's mode) and tightened if an older
    Nerve left it 0644."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.chmod(0o600)


class SqliteStore(ResourceStore):
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            _private_files(Path(path))
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        # Stores written before resourceVersions existed get one at their first change.
        self._changed = asyncio.Event()
        self._closed = False
        self._grouped = 0
        """Depth of `grouped()`: while above 0 a transaction is a SAVEPOINT inside one open transaction."""

    # ------------------------------------------------------------------------------------ reads

    @staticmethod
    def _row(body: bytes, status: bytes) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(body)
        obj["status"] = orjson.loads(status)
        obj["metadata"].setdefault("resourceVersion", "0")
        return obj

    def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT body, status FROM resources WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
        ).fetchone()
        return None if row is None else self._row(row[0], row[1])

    def _revision(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='changes'").fetchone()
        return int(row[0]) if row else 0

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(kind, namespace, name)

    async def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        if namespace is None:
            rows = self._db.execute(
                "SELECT body, status FROM resources WHERE kind=? ORDER BY namespace, name", (kind,)
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT body, status FROM resources WHERE kind=? AND namespace=? ORDER BY name", (kind, namespace)
            ).fetchall()
        return ObjectList([self._row(body, status) for body, status in rows], str(self._revision()))

    async def watch(self, kind: str, namespace: str | None = None, *,
                    resource_version: str | None = None) -> AsyncIterator[WatchEvent]:
        if resource_version is None:
            listed = await self.list(kind, namespace)
            for obj in listed.items:
                yield WatchEvent("ADDED", obj)
            resource_version = listed.resource_version
        try:
            last = int(resource_version)
        except ValueError:
            raise Expired(f"resourceVersion {resource_version!r} is not one this store wrote") from None
        while not self._closed:
            # Checked on every read, not only at the start: a watcher that fell behind while the log was
            # trimmed has lost changes, and says so (410 Gone) rather than skipping them silently.
            oldest = self._db.execute("SELECT MIN(rv) FROM changes").fetchone()[0]
            if oldest is not None and last < oldest - 1:
                raise Expired(f"too old resource version: {last} (oldest kept: {oldest})")
            changed = self._changed  # taken before reading, so a write after the read still wakes us
            query = "SELECT rv, type, object FROM changes WHERE rv > ? AND kind = ?"
            args: list[Any] = [last, kind]
            if namespace is not None:
                query += " AND namespace = ?"
                args.append(namespace)
            rows = self._db.execute(query + " ORDER BY rv", args).fetchall()
            for rv, type_, body in rows:
                last = rv
                obj = orjson.loads(body)
                obj["metadata"]["resourceVersion"] = str(rv)  # logged before its rv was known (_record)
                yield WatchEvent(type_, obj)
            if not rows:
                await changed.wait()

    # ----------------------------------------------------------------------------------- writes

    def _record(self, type_: EventType, obj: dict[str, Any]) -> None:
        """Log the change and give the object its new resourceVersion (called inside a transaction)."""
        kind, namespace, name = key_of(obj)
        # One statement: the logged object's resourceVersion is its row's rv, set when a watch reads it back,
        # so the insert need not be followed by an update that writes the object a second time.
        cursor = self._db.execute("INSERT INTO changes (kind, namespace, type, object) VALUES (?, ?, ?, ?)",
                                  (kind, namespace, type_, orjson.dumps(obj)))
        rv = int(cursor.lastrowid or 0)
        obj["metadata"]["resourceVersion"] = str(rv)
        if type_ == "DELETED":
            self._db.execute("DELETE FROM resources WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name))
        else:
            body = {k: v for k, v in obj.items() if k != "status"}
            self._db.execute(
                "INSERT OR REPLACE INTO resources (kind, namespace, name, body, status) VALUES (?, ?, ?, ?, ?)",
                (kind, namespace, name, orjson.dumps(body), orjson.dumps(obj.get("status") or {})),
            )
        if rv % 100 == 0:
            self._db.execute("DELETE FROM changes WHERE rv <= ?", (rv - CHANGES_KEPT,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _current(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind, namespace, name = key_of(obj)
        old = self._get(kind, namespace, name)
        if old is None:
            raise NotFound(f"{_label(kind, namespace, name)} not found")
        wanted = obj["metadata"].get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise Conflict(f"{_label(kind, namespace, name)} was changed by someone else (resourceVersion "
                           f"{wanted} is not the current {old['metadata']['resourceVersion']}); read it again")
        return old

    def _create(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind, namespace, name = key_of(obj)
        old = self._get(kind, namespace, name)
        if old is not None:
            being = " and is being deleted" if old["metadata"].get("deletionTimestamp") else ""
            raise Conflict(f"{_label(kind, namespace, name)} already exists{being}")
        new = _copy(obj)
        meta = new["metadata"]
        for key in ("deletionTimestamp", "resourceVersion"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=_now())
        new["status"] = {}
        self._record("ADDED", new)
        return new

    def _update(self, obj: dict[str, Any]) -> dict[str, Any]:
        old = self._current(obj)
        old_meta = old["metadata"]
        new = _copy(obj)
        meta = new["metadata"]
        for key in ("uid", "creationTimestamp", "deletionTimestamp"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise InvalidResource([FieldError("metadata.finalizers", "no new finalizers can be added while "
                                                  f"the object is being deleted: {sorted(added)}")])
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        meta["generation"] = old_meta["generation"] + (_outside_metadata(old) != _outside_metadata(new))
        new["status"] = old["status"]
        if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._record("DELETED", new)
        elif {**new, "metadata": {**meta, "resourceVersion": ""}} != {
            **old, "metadata": {**old_meta, "resourceVersion": ""}
        }:
            self._record("MODIFIED", new)
        else:
            return old  # nothing changed: no new version, as the API server answers a no-op update
        return new

    def _update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        old = self._current(obj)
        status = obj.get("status") or {}
        if old["status"] == status:
            return old
        new = {**old, "metadata": dict(old["metadata"]), "status": _copy(status)}
        self._record("MODIFIED", new)
        return new

    def _delete(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        old = self._get(kind, namespace, name)
        if old is None:
            raise NotFound(f"{_label(kind, namespace, name)} not found")
        if not old["metadata"].get("finalizers"):
            self._record("DELETED", old)
            return None
        if not old["metadata"].get("deletionTimestamp"):
            old["metadata"]["deletionTimestamp"] = _now()
            self._record("MODIFIED", old)
        return old

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self._transaction():
            return self._create(obj)

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self._transaction():
            return self._update(obj)

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self._transaction():
            return self._update_status(obj)

    async def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._transaction():
            return self._delete(kind, namespace, name)

    async def write_batch(self, writes: builtins.list[Write]) -> builtins.list[dict[str, Any]]:
        """`BatchStore`: every write of a `nerve apply` in one transaction."""
        with self._transaction():
            return [self._create(w.object) if w.op == "create" else self._update(w.object) for w in writes]

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """`GroupCommit`: one BEGIN IMMEDIATE ... COMMIT around everything written inside; each write is a
        SAVEPOINT in it, released or rolled back on its own. Control is the database's only user and each
        write is sync (no await inside one), so a write from an API request made while a pass holds the
        group joins it, visible at once and committed with it. The end always commits: every write inside
        is already whole or undone, so an error (a cancelled pass) must not undo the ones that succeeded."""
        if self._grouped == 0:
            self._db.execute("BEGIN IMMEDIATE")
        self._grouped += 1
        try:
            yield
        finally:
            self._grouped -= 1
            if self._grouped == 0 and not self._closed:
                self._db.execute("COMMIT")

    async def close(self) -> None:
        if self._grouped and not self._closed:
            self._db.execute("COMMIT")  # what a pass still open has written is kept
        self._closed = True
        self._notify()
        self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error; watchers are woken after a commit. Inside
`grouped()` a SAVEPOINT instead, released or rolled back to."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._db.execute("SAVEPOINT write" if self._store._grouped else "BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        db, grouped = self._store._db, self._store._grouped
        if exc_type is None:
            db.execute("RELEASE write" if grouped else "COMMIT")
            self._store._notify()
        elif grouped:
            db.execute("ROLLBACK TO write")
            db.execute("RELEASE write")
        else:
            db.execute("ROLLBACK")
