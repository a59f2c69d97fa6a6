"""kubectl-like tables, YAML and JSON for `nerve get` and `nerve describe` (columns: control/api/columns.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from control.api.columns import NAMESPACE, Column, age
from control.api.eventtype import trigger_for


def table(columns: Sequence[Column], items: list[dict[str, Any]], *, all_namespaces: bool) -> str:
    """A kubectl table of `items` with a kind's printer columns (its registry entry names them)."""
    if all_namespaces:
        columns = [NAMESPACE, *columns]
    rows = [[c.header for c in columns]] + [[c.cell(item) for c in columns] for item in items]
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


def eventtype_trigger(eventtype: dict[str, Any]) -> str:
    """What `nerve describe eventtype` adds: a Trigger for exactly this type and source, to fill and apply."""
    trigger = trigger_for(eventtype)
    if trigger is None:
        return "Trigger:      none (the EventType references no Broker to subscribe at)"
    return "\n".join([
        "Trigger:      subscribes to exactly this type and source; fill in spec.subscriber, then `nerve apply -f -`",
        "---",
        yaml.safe_dump(trigger, sort_keys=False).rstrip(),
    ])
