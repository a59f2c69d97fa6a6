"""What the SQLite store holds while `grouped()` has the database's write lock: the rows it knows, and the
status writes it has not yet sent to SQLite.

A reconcile pass over 10,000 new Triggers makes 10,000 status writes. Each alone was five statements (a
savepoint, the read of the row for its resourceVersion, the logged change, the row, the release), each a
call from Python into SQLite: a fifth of the apply. Inside a group nobody else can write (BEGIN IMMEDIATE
holds the lock and control is the connection's only user), so the store can know every row the pass
listed or wrote without reading it again, check a status write's resourceVersion against what it knows,
number the write itself (the next change-log id) and keep it here; `flush` sends them all with two
`executemany` calls (the log, the rows) when anything else touches the database, and before the group
commits.

The invariant that keeps it exact: whatever is buffered is also in `rows` (a read of a known row answers
from there), and the buffer is empty whenever any other statement runs (the store flushes first), so the
tables, plus the buffer, are always the store's whole state, and the change log never has a gap below an
id that a watcher has read.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

Key = tuple[str, str, str]
Row = tuple[bytes, bytes, int | None]
"""A stored row: body (the object without status), status, rv."""
Change = tuple[int, str, str, str, bytes]
"""A row of the change log: rv, kind, namespace, type (ADDED, MODIFIED, DELETED), the object."""


@dataclass(slots=True)
class GroupState:
    rows: dict[Key, Row] = field(default_factory=dict)
    """The rows as they are, buffered writes included, for the rows this group listed, read or wrote."""
    next_rv: int | None = None
    """The change-log id the next buffered write takes; None when it must be read (nothing buffered)."""
    _changes: list[Change] = field(default_factory=list)
    _statuses: list[tuple[bytes, int, str, str, str]] = field(default_factory=list)

    def buffer_status(self, key: Key, body: bytes, status: bytes, rv: int, logged: bytes) -> None:
        """A status write, checked and numbered by the store: `logged` is the change log's object."""
        kind, namespace, name = key
        self._changes.append((rv, kind, namespace, "MODIFIED", logged))
        self._statuses.append((status, rv, kind, namespace, name))
        self.rows[key] = (body, status, rv)
        self.next_rv = rv + 1

    def flush(self, db: sqlite3.Connection, kept: int) -> bool:
        """Write what is buffered, all of it or (an error) none; True when there was something. `kept` is how
        many changes the log keeps: trimmed as the writes one by one would have left it."""
        if not self._changes:
            return False
        changes, statuses = self._changes, self._statuses
        self._changes, self._statuses = [], []
        db.execute("SAVEPOINT flush")
        try:
            write_changes(db, changes, kept)
            db.executemany("UPDATE resources SET status=?, rv=? WHERE kind=? AND namespace=? AND name=?", statuses)
        except BaseException:
            db.execute("ROLLBACK TO flush")
            db.execute("RELEASE flush")
            # What the rows said included the writes just undone: read again from the tables.
            self.rows.clear()
            self.next_rv = None
            raise
        db.execute("RELEASE flush")
        return True


def write_changes(db: sqlite3.Connection, changes: list[Change], kept: int) -> None:
    """Log `changes` (numbered in order, the first after the log's last id) and trim the log as writing them one
    at a time would have left it: each write whose id is a multiple of 100 deletes every change `kept` or more
    before it, so the last such id among these decides. A change that trimming deletes is not inserted at all:
    no statement runs between these and the trim, so nobody could have read it (10,000 writes of an apply:
    9,000 rows of about a kilobyte each neither inserted nor deleted)."""
    first, last = changes[0][0], changes[-1][0]
    trim_at = last - last % 100
    trimmed = trim_at - kept if trim_at >= first else None
    db.executemany("INSERT INTO changes (rv, kind, namespace, type, object) VALUES (?, ?, ?, ?, ?)",
                   changes if trimmed is None or trimmed < first else [c for c in changes if c[0] > trimmed])
    if trimmed is not None:
        db.execute("DELETE FROM changes WHERE rv <= ?", (trimmed,))
