"""What the fuzz tests read back from Nerve: /metrics (status, size, the dropped counter) and RSS."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import psutil

from tests.fuzz.rawhttp import Request
from tests.support.stack import Stack

METRICS_BOUND = 4 * 1024 * 1024
"""What fuzzing adds to /metrics must stay under 4 MiB however many distinct types and paths were sent
(defect 1 was 100s of MB). Capped, each Broker and each Trigger label at most 100 event types; with both
families served (Knative's kn_eventing_* histograms and the older mt_broker_* ones, --legacy-metrics) the
fuzz Broker and its Trigger come to about 3 MB (measured alone: 3.0 MB)."""
_DROPPED = re.compile(rb"^nerve_dispatcher_dropped_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


_REASON = re.compile(rb'reason="([^"]*)"')


@dataclass
class Metrics:
    status: int
    size: int
    dropped_by_reason: dict[str, float]

    @property
    def dropped(self) -> float:
        return sum(self.dropped_by_reason.values())


async def metrics(stack: Stack) -> Metrics:
    async with stack.session.get(f"{stack.api}/metrics") as response:
        body = await response.read()
    by_reason: dict[str, float] = {}
    for match in _DROPPED.finditer(body):
        reason = _REASON.search(match.group(0))
        key = reason.group(1).decode() if reason else "?"
        by_reason[key] = by_reason.get(key, 0.0) + float(match.group(1))
    return Metrics(response.status, len(body), by_reason)


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


@dataclass
class Tally:
    """Every answer by status, the requests behind 5xx (smallest first), the ids owed to the Trigger."""

    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[tuple[int, Request, bytes]] = field(default_factory=list)
    accepted_ids: dict[str, Request] = field(default_factory=dict)
    metrics_failures: list[tuple[int, Request]] = field(default_factory=list)

    def record(self, request: Request, status: int, body: bytes) -> None:
        self.statuses[status] += 1
        if status >= 500 and not _documented_unavailable(status, body):
            self.server_errors.append((status, request, body))
        if status == 202:
            for event_id in request.tracked:
                self.accepted_ids[event_id] = request

    def smallest_errors(self, count: int = 8) -> list[str]:
        """The smallest failing request of each kind (so one defect does not hide the others)."""
        ordered = sorted(self.server_errors, key=lambda e: len(e[1].body) + len(repr(e[1].headers)))
        kinds: dict[tuple[object, ...], str] = {}
        for status, req, body in ordered:
            kinds.setdefault(_signature(req), f"{status} {body[:200]!r} <- {req.describe()}")
        return list(kinds.values())[:count]

    def table(self) -> str:
        return "\n".join(f"  {status:>4}  {count:>8}" for status, count in sorted(self.statuses.items()))


def _documented_unavailable(status: int, body: bytes) -> bool:
    """503 is the documented answer of a full or unreachable backend (BackendFull / BackendError)."""
    return status == 503 and (b'"BackendFull"' in body or b'"BackendError"' in body)


def _signature(request: Request) -> tuple[object, ...]:
    headers = {name.lower(): value for name, value in request.headers}
    nesting = request.body.count(b"[") + request.body.count(b"{") > 500
    return (headers.get("content-encoding"), headers.get("content-type"),
            b"datacontentencoding" in request.body or "ce-datacontentencoding" in headers, nesting)
