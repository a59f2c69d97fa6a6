"""SQLite resource store: one row per resource, the manifest and its status as JSON.

The control plane is the only writer and its transactions take well under a millisecond, so the
standard library's synchronous sqlite3 is used directly. `put_all` keeps `nerve apply -f dir/` atomic.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from control.store.base import Outcome, ResourceStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    body BLOB NOT NULL,
    status BLOB NOT NULL,
    PRIMARY KEY (kind, namespace, name)
)
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SqliteStore(ResourceStore):
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    @staticmethod
    def _row(body: bytes, status: bytes) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(body)
        obj["status"] = orjson.loads(status)
        return obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT body, status FROM resources WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
        ).fetchone()
        return None if row is None else self._row(row[0], row[1])

    def find(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            rows = self._db.execute(
                "SELECT body, status FROM resources WHERE kind=? ORDER BY namespace, name", (kind,)
            )
        else:
            rows = self._db.execute(
                "SELECT body, status FROM resources WHERE kind=? AND namespace=? ORDER BY name", (kind, namespace)
            )
        return [self._row(body, status) for body, status in rows]

    def put_all(self, objs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Outcome]]:
        results: list[tuple[dict[str, Any], Outcome]] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for obj in objs:
                results.append(self._put(obj))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return results

    def _put(self, obj: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
        kind, meta = obj["kind"], obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        old = self.get(kind, namespace, name)
        body = {k: v for k, v in obj.items() if k != "status"}
        outcome: Outcome
        if old is None:
            meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=_now())
            status: dict[str, Any] = {}
            outcome = "created"
        else:
            old_meta = old["metadata"]
            generation = old_meta["generation"]
            if old.get("spec") != obj.get("spec") or old.get("data") != obj.get("data"):
                generation += 1
            meta.update(uid=old_meta["uid"], generation=generation, creationTimestamp=old_meta["creationTimestamp"])
            status = old["status"]
            old_body = {k: v for k, v in old.items() if k != "status"}
            outcome = "unchanged" if old_body == body else "configured"
        self._db.execute(
            "INSERT OR REPLACE INTO resources (kind, namespace, name, body, status) VALUES (?, ?, ?, ?, ?)",
            (kind, namespace, name, orjson.dumps(body), orjson.dumps(status)),
        )
        return {**body, "status": status}, outcome

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        cursor = self._db.execute(
            "DELETE FROM resources WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
        )
        return cursor.rowcount > 0

    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE resources SET status=? WHERE kind=? AND namespace=? AND name=?",
            (orjson.dumps(status), kind, namespace, name),
        )

    def close(self) -> None:
        self._db.close()
