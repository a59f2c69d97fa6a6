"""kubectl-like tables, YAML and JSON for `nerve get` and `nerve describe`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml


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
            return c.get("status", "Unknown"), c.get("reason", "")
    return "Unknown", ""


Column = tuple[str, Callable[[dict[str, Any]], str]]

_NAME: Column = ("NAME", lambda o: o["metadata"]["name"])
_AGE: Column = ("AGE", lambda o: age(o["metadata"].get("creationTimestamp")))
_READY: Column = ("READY", lambda o: _ready(o)[0])
_REASON: Column = ("REASON", lambda o: _ready(o)[1])

COLUMNS: dict[str, list[Column]] = {
    "Broker": [_NAME, ("URL", lambda o: o.get("status", {}).get("address", {}).get("url", "")), _AGE, _READY, _REASON],
    "Trigger": [_NAME, ("BROKER", lambda o: o.get("spec", {}).get("broker", "")),
                ("SUBSCRIBER_URI", lambda o: o.get("status", {}).get("subscriberUri", "")), _AGE, _READY, _REASON],
    "ConfigMap": [_NAME, ("DATA", lambda o: str(len(o.get("data") or {}))), _AGE],
    # Knative's printer columns for KafkaSource.
    "KafkaSource": [_NAME, ("TOPICS", lambda o: json.dumps(o.get("spec", {}).get("topics", []))),
                    ("BOOTSTRAPSERVERS", lambda o: json.dumps(o.get("spec", {}).get("bootstrapServers", []))),
                    _READY, _REASON, _AGE],
}
DEFAULT_COLUMNS: list[Column] = [_NAME, _AGE]


def table(kind: str, items: list[dict[str, Any]], *, all_namespaces: bool) -> str:
    columns = list(COLUMNS.get(kind, DEFAULT_COLUMNS))
    if all_namespaces:
        columns.insert(0, ("NAMESPACE", lambda o: o["metadata"].get("namespace", "")))
    rows = [[header for header, _ in columns]] + [[fn(item) for _, fn in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False).rstrip()


def describe(obj: dict[str, Any]) -> str:
    meta, status = obj["metadata"], obj.get("status", {})
    lines = [
        f"Name:         {meta['name']}",
        f"Namespace:    {meta.get('namespace', '')}",
        f"Kind:         {obj['kind']} ({obj['apiVersion']})",
        f"UID:          {meta.get('uid', '')}",
        f"Generation:   {meta.get('generation', '')}  (observed {status.get('observedGeneration', '-')})",
        f"Created:      {meta.get('creationTimestamp', '')} ({age(meta.get('creationTimestamp'))} ago)",
    ]
    for key in ("labels", "annotations"):
        if meta.get(key):
            lines.append(f"{key.capitalize() + ':':<14}" + ", ".join(f"{k}={v}" for k, v in meta[key].items()))
    if status.get("address", {}).get("url"):
        lines.append(f"Address:      {status['address']['url']}")
    for key, label in (("subscriberUri", "Subscriber:"), ("deadLetterSinkUri", "Dead letter:")):
        if status.get(key):
            lines.append(f"{label:<14}{status[key]}")
    if obj.get("spec"):
        lines.append("Spec:")
        lines += ["  " + line for line in yaml.safe_dump(obj["spec"], sort_keys=False).rstrip().splitlines()]
    conditions = status.get("conditions", [])
    if conditions:
        lines.append("Conditions:")
        rows = [["TYPE", "STATUS", "REASON", "MESSAGE", "LAST TRANSITION"]] + [
            [c.get("type", ""), c.get("status", ""), c.get("reason", ""), c.get("message", ""),
             c.get("lastTransitionTime", "")] for c in conditions
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines += ["  " + "   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
