"""Printer columns: what `nerve get` shows for a kind (a CRD's additionalPrinterColumns).

A kind lists its columns in its registry entry (control/api/kinds.py); `nerve/output.py` only lays
them out. The cell functions take the stored object (with status) and return text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    cell: Callable[[dict[str, Any]], str]
    json_path: str = ""
    """The same cell as a CRD's additionalPrinterColumns jsonPath (control/crds.py); empty when the cell is
    computed (kubectl cannot print it)."""
    type: str = "string"
    """The printer column's OpenAPI type."""


def age(timestamp: str | None, now: datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _ready(obj: dict[str, Any]) -> tuple[str, str]:
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown")), str(c.get("reason", ""))
    return "Unknown", ""


def field(header: str, *path: str) -> Column:
    """A column showing one field of the object (empty when unset); lists and maps as JSON."""
    def cell(o: dict[str, Any]) -> str:
        value: Any = o
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value)
    return Column(header, cell, "." + ".".join(path))


NAME = Column("NAME", lambda o: str(o["metadata"]["name"]), ".metadata.name")
NAMESPACE = Column("NAMESPACE", lambda o: str(o["metadata"].get("namespace", "")), ".metadata.namespace")
AGE = Column("AGE", lambda o: age(o["metadata"].get("creationTimestamp")), ".metadata.creationTimestamp", "date")
READY = Column("READY", lambda o: _ready(o)[0], '.status.conditions[?(@.type=="Ready")].status')
REASON = Column("REASON", lambda o: _ready(o)[1], '.status.conditions[?(@.type=="Ready")].reason')
DEFAULT: tuple[Column, ...] = (NAME, AGE)
