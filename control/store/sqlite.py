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

Inside `grouped()` (a reconcile pass) status writes are buffered and sent together (store/sqlite_group.py):
each is checked and numbered at once, and seen at once by every read of this store.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
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
from control.store.sqlite_group import Change, GroupState, Key, Row, write_changes
from core.errors import Conflict, FieldError, InvalidResource, NotFound

CHANGES_KEPT = 1000
_NAMES_PER_SELECT = 900
"""Names bound in one `get_many` SELECT: under 999, the most host parameters an SQLite before 3.32 takes."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS resources (
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        body BLOB NOT NULL,
        status BLOB NOT NULL,
        rv INTEGER,
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


_stamped: tuple[int, str] = (-1, "")
"""The last second `_now` formatted, and how: an apply of 10,000 Triggers creates them all within a second
or two, and strftime for each was a tenth of the store's work per create."""


def _uid() -> str:
    """str(uuid.uuid4()), about three times quicker (10,000 creates made 10,000 UUID objects only to print
    them): the same 16 random bytes of os.urandom with the version (4) and variant (10xx) bits set as
    uuid4 sets them (tests/unit/test_store_uid.py)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}
"""The variant's hex digit: the top two bits 10, the low two the random byte's."""


def _now() -> str:
    global _stamped
    second = int(time.time())
    if second != _stamped[0]:
        _stamped = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamped[1]


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON: an orjson round trip, several times quicker than copy.deepcopy (and every
    stored object is JSON, it is written so)."""
    copied: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return copied


def _with_status(body: bytes, status: bytes) -> bytes:
    """The serialised object from its serialised body (a JSON object without "status") and status."""
    return (body[:-1] + b',"status":' if body != b"{}" else b'{"status":') + status + b"}"


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
        self._db.execute("PRAGMA cache_size=-65536")
        for statement in _SCHEMA:
            self._db.execute(statement)
        # The row's resourceVersion as a column, so a status write checks it without parsing the object and
        # rewrites only the status. Stores written before it have none until their row's next write (then
        # the body's own metadata.resourceVersion, or "0" for one written before resourceVersions existed).
        if "rv" not in {row[1] for row in self._db.execute("PRAGMA table_info(resources)")}:
            self._db.execute("ALTER TABLE resources ADD COLUMN rv INTEGER")
        self._changed = asyncio.Event()
        self._closed = False
        self._grouped = 0
        """Depth of `grouped()`: while above 0 a transaction is a SAVEPOINT inside one open transaction."""
        self._group: GroupState | None = None
        """While grouped: the rows known and the status writes buffered (sqlite_group.py)."""
        self._held: builtins.list[Change] | None = None
        """Inside write_batch: its changes, numbered from `_held_rv`, logged at its end."""
        self._held_rv = 0

    # ------------------------------------------------------------------------------------ reads

    @staticmethod
    def _row(body: bytes, status: bytes, rv: int | None) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(body)
        obj["status"] = orjson.loads(status)
        if rv is None:
            obj["metadata"].setdefault("resourceVersion", "0")
        else:
            obj["metadata"]["resourceVersion"] = str(rv)  # the body's own is the one before a status write
        return obj

    def _select(self, kind: str, namespace: str, name: str) -> Row | None:
        """The row; inside a group as the group knows it (buffered writes included), else read and remembered
        (nothing buffered is of a row the group does not know, so the table has it as it is)."""
        group = self._group
        if group is not None:
            known = group.rows.get((kind, namespace, name))
            if known is not None:
                return known
        row: Row | None = self._db.execute(
            "SELECT body, status, rv FROM resources WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
        ).fetchone()
        if group is not None and row is not None:
            group.rows[(kind, namespace, name)] = row
        return row

    def _flush(self) -> None:
        """Send a group's buffered status writes before any other statement (see sqlite_group.py)."""
        if self._group is not None and self._group.flush(self._db, CHANGES_KEPT):
            self._notify()

    def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        row = self._select(kind, namespace, name)
        return None if row is None else self._row(*row)

    def _revision(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='changes'").fetchone()
        return int(row[0]) if row else 0

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(kind, namespace, name)

    async def get_many(self, keys: builtins.list[Key]) -> dict[Key, dict[str, Any]]:
        """`BatchRead`: one SELECT per kind and namespace (and per `_NAMES_PER_SELECT` names) instead of one per
        key. Buffered status writes are sent first, so the tables are the whole state (as for `list`)."""
        self._flush()
        names: dict[tuple[str, str], dict[str, None]] = {}
        for kind, namespace, name in keys:
            names.setdefault((kind, namespace), {})[name] = None
        found: dict[Key, dict[str, Any]] = {}
        for (kind, namespace), wanted in names.items():
            listed = builtins.list(wanted)
            for start in range(0, len(listed), _NAMES_PER_SELECT):
                chunk = listed[start:start + _NAMES_PER_SELECT]
                rows = self._db.execute(
                    "SELECT name, body, status, rv FROM resources WHERE kind=? AND namespace=? AND name IN "
                    f"({','.join('?' * len(chunk))})", (kind, namespace, *chunk)).fetchall()
                for name, body, status, rv in rows:
                    found[(kind, namespace, name)] = self._row(body, status, rv)
        return found

    async def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        self._flush()
        if namespace is None:
            rows = self._db.execute(
                "SELECT namespace, name, body, status, rv FROM resources WHERE kind=? ORDER BY namespace, name", (kind,)
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT namespace, name, body, status, rv FROM resources WHERE kind=? AND namespace=? ORDER BY name",
                (kind, namespace),
            ).fetchall()
        revision = self._revision()
        if self._group is not None:
            # A pass lists every kind first, then writes statuses: each such write then needs no read, neither
            # of its row nor of the log's last id (nothing is buffered right after a flush).
            known = self._group.rows
            for ns, name, body, status, rv in rows:
                known[(kind, ns, name)] = (body, status, rv)
            self._group.next_rv = revision + 1
        return ObjectList([self._row(body, status, rv) for _, _, body, status, rv in rows], str(revision))

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
            self._flush()
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
        body = orjson.dumps({k: v for k, v in obj.items() if k != "status"})
        rv = self._write(type_, kind, namespace, name, body, orjson.dumps(obj.get("status") or {}))
        obj["metadata"]["resourceVersion"] = str(rv)

    def _write(self, type_: EventType, kind: str, namespace: str, name: str, body: bytes, status: bytes, *,
               row: str = "replace") -> int:
        """The change logged and the row written (or deleted) from the object's serialised body and status;
        its new resourceVersion. Each is serialised once: the logged object is the two spliced. `row` says how
        the row is written: `replace` (the whole row), `insert` (a new one: IntegrityError when the name is
        taken; the caller's transaction then undoes the logged change) or `status` (only its status and rv,
        in place)."""
        # One statement: the logged object's resourceVersion is its row's rv, set when a watch reads it back,
        # so the insert need not be followed by an update that writes the object a second time. Likewise the
        # row's rv column is the truth, whatever resourceVersion its body carries.
        held = self._held
        if held is not None:  # a batch's: numbered here, logged with the others at its end (write_batch)
            rv = self._held_rv
            self._held_rv += 1
            held.append((rv, kind, namespace, type_, _with_status(body, status)))
        else:
            cursor = self._db.execute("INSERT INTO changes (kind, namespace, type, object) VALUES (?, ?, ?, ?)",
                                      (kind, namespace, type_, _with_status(body, status)))
            rv = int(cursor.lastrowid or 0)
        if type_ == "DELETED":
            self._db.execute("DELETE FROM resources WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name))
        elif row == "status":
            self._db.execute("UPDATE resources SET status=?, rv=? WHERE kind=? AND namespace=? AND name=?",
                             (status, rv, kind, namespace, name))
        elif row == "insert":
            self._db.execute(
                "INSERT INTO resources (kind, namespace, name, body, status, rv) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, namespace, name, body, status, rv),
            )
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO resources (kind, namespace, name, body, status, rv) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, namespace, name, body, status, rv),
            )
        if rv % 100 == 0 and held is None:
            self._db.execute("DELETE FROM changes WHERE rv <= ?", (rv - CHANGES_KEPT,))
        if self._group is not None:  # (a savepoint undoing this write makes the group forget both)
            self._group.next_rv = rv + 1
            if type_ == "DELETED":
                self._group.rows.pop((kind, namespace, name), None)
            else:
                self._group.rows[(kind, namespace, name)] = (body, status, rv)
        return rv

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
        self._check_version(obj, old["metadata"]["resourceVersion"])
        return old

    @staticmethod
    def _check_version(obj: dict[str, Any], current: str) -> None:
        wanted = obj["metadata"].get("resourceVersion")
        if wanted and wanted != current:
            kind, namespace, name = key_of(obj)
            raise Conflict(f"{_label(kind, namespace, name)} was changed by someone else (resourceVersion "
                           f"{wanted} is not the current {current}); read it again")

    def _create(self, obj: dict[str, Any], *, handed_over: bool = False) -> dict[str, Any]:
        """Inside a transaction (or savepoint) that an error undoes: a name already taken is found by the row's
        insert failing, not by reading it first (an apply creates 10,000 Triggers: 10,000 reads fewer).

        What is returned is parsed from what was stored, a copy the caller's object shares nothing with;
        unless `handed_over` (write_batch): then it is the stored object made of `obj`'s own values, which the
        caller gave up (parsing 10,000 Triggers back was a tenth of the store's work in an apply)."""
        kind, namespace, name = key_of(obj)
        meta = {k: v for k, v in obj["metadata"].items() if k not in ("deletionTimestamp", "resourceVersion")}
        meta.update(uid=_uid(), generation=1, creationTimestamp=_now())
        stored = {k: v for k, v in obj.items() if k != "status"}
        stored["metadata"] = meta
        body = orjson.dumps(stored)
        try:
            rv = self._write("ADDED", kind, namespace, name, body, b"{}", row="insert")
        except sqlite3.IntegrityError:
            old = self._get(kind, namespace, name)
            being = " and is being deleted" if old and old["metadata"].get("deletionTimestamp") else ""
            raise Conflict(f"{_label(kind, namespace, name)} already exists{being}") from None
        if not handed_over:
            return self._row(body, b"{}", rv)
        # As _row makes it: the body's keys in their order, then status, and the row's rv.
        meta["resourceVersion"] = str(rv)
        stored["status"] = {}
        return stored

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

    def _update_status(self, obj: dict[str, Any], write: Callable[[Key, bytes, bytes], int] | None = None,
                       found: tuple[Key, Row | None] | None = None, *, handed_over: bool = False) -> dict[str, Any]:
        """The status subresource: the row's rv column is checked and only its status and rv are rewritten; the
        stored body is neither parsed for the check nor serialised again (a reconcile pass makes one status
        write per object it changes: 10,000 for 10,000 new Triggers). `write(key, body, status)` writes a
        changed status and returns its rv: `_write_status`, or inside a group `_buffer_status`. `found` is the
        key and row when the caller has read them already; `handed_over`, see update_status_handed_over."""
        (kind, namespace, name), row = found if found is not None else ((key := key_of(obj)), self._select(*key))
        if row is None:
            raise NotFound(f"{_label(kind, namespace, name)} not found")
        body, stored_status, rv = row
        if rv is None:  # a row from before the rv column: the general path gives it one
            old = self._row(body, stored_status, rv)
            self._check_version(obj, old["metadata"]["resourceVersion"])
            status = obj.get("status") or {}
            if old["status"] == status:
                return old
            new = {**old, "metadata": dict(old["metadata"]), "status": _copy(status)}
            self._record("MODIFIED", new)
            return new
        self._check_version(obj, str(rv))
        status = obj.get("status") or {}
        # (A row's first status is {}: compared without parsing it.)
        if (not status) if stored_status == b"{}" else orjson.loads(stored_status) == status:
            return self._row(body, stored_status, rv)  # nothing changed: no new version
        status_bytes = orjson.dumps(status)
        rv = (write or self._write_status)((kind, namespace, name), body, status_bytes)
        if handed_over:
            # What _row would parse: the version check above says obj was read at the row's rv, so its body is the
            # stored one; its keys in their order, the new rv in metadata's own place, the status as given.
            return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}, "status": status}
        return self._row(body, status_bytes, rv)

    def _write_status(self, key: Key, body: bytes, status: bytes) -> int:
        # The row as it is, with the new status: the logged object is the stored body and the new status
        # spliced (_write); the body is neither parsed for the check nor serialised again.
        return self._write("MODIFIED", *key, body, status, row="status")

    def _buffer_status(self, key: Key, body: bytes, status: bytes) -> int:
        """Inside a group, no statement: numbered by the group and buffered (sqlite_group.py)."""
        group = self._group
        assert group is not None
        if group.next_rv is None:  # nothing buffered: the log's last id is the table's
            group.next_rv = self._revision() + 1
        rv = group.next_rv
        group.buffer_status(key, body, status, rv, _with_status(body, status))
        return rv

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
        if self._group is not None:
            key = key_of(obj)
            row = self._select(*key)
            # Checked against the row as the group knows it and buffered, with no statement; a row from before
            # the rv column takes the general path, which gives it one.
            if row is None or row[2] is not None:
                return self._update_status(obj, self._buffer_status, (key, row))
        with self._transaction():
            return self._update_status(obj)

    async def update_status_handed_over(self, obj: dict[str, Any]) -> dict[str, Any]:
        """`StatusHandOver`: inside a group (a pass), the status write buffered as update_status buffers it, and
        the object returned made of obj's values rather than parsed back from the row (10,000 Triggers' status
        writes parsed 20,000 objects back); the caller gives obj up, so sharing its values is safe. Anywhere
        else, or for a row from before the rv column, update_status as it is."""
        if self._group is not None:
            key = key_of(obj)
            row = self._select(*key)
            if row is not None and row[2] is not None:
                return self._update_status(obj, self._buffer_status, (key, row), handed_over=True)
        return await self.update_status(obj)

    async def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._transaction():
            return self._delete(kind, namespace, name)

    async def write_batch(self, writes: builtins.list[Write]) -> builtins.list[dict[str, Any]]:
        """`BatchStore`: every write of a `nerve apply` in one transaction (the objects given are handed over: what
        is returned of a create shares their values). Their changes are logged together at
        the end (write_changes: those the log's trimming would delete by then are not written at all); no
        statement of anyone else runs in between, as none can inside one sync call."""
        with self._transaction():
            self._held, self._held_rv = [], self._revision() + 1
            try:
                written = [self._create(w.object, handed_over=True) if w.op == "create" else self._update(w.object)
                           for w in writes]
                if self._held:
                    write_changes(self._db, self._held, CHANGES_KEPT)
            finally:
                self._held = None
            return written

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """`GroupCommit`: one BEGIN IMMEDIATE ... COMMIT around everything written inside; each write is a
        SAVEPOINT in it, released or rolled back on its own. Control is the database's only user and each
        write is sync (no await inside one), so a write from an API request made while a pass holds the
        group joins it, visible at once and committed with it. The end always commits: every write inside
        is already whole or undone, so an error (a cancelled pass) must not undo the ones that succeeded."""
        if self._grouped == 0:
            self._db.execute("BEGIN IMMEDIATE")
            self._group = GroupState()
        self._grouped += 1
        try:
            yield
        finally:
            self._grouped -= 1
            if self._grouped == 0 and not self._closed:
                try:
                    self._flush()
                finally:
                    self._group = None
                    self._db.execute("COMMIT")

    async def close(self) -> None:
        if self._grouped and not self._closed:
            try:
                self._flush()
            finally:
                self._group = None
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
        self._store._flush()  # a group's buffered writes first: this write reads and numbers after them
        self._store._db.execute("SAVEPOINT write" if self._store._grouped else "BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        db, grouped = self._store._db, self._store._grouped
        if exc_type is None:
            db.execute("RELEASE write" if grouped else "COMMIT")
            self._store._notify()
        elif grouped:
            db.execute("ROLLBACK TO write")
            db.execute("RELEASE write")
            if self._store._group is not None:  # what it knew may include what was just undone
                self._store._group.rows.clear()
                self._store._group.next_rv = None
        else:
            db.execute("ROLLBACK")
