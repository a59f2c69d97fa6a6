"""Fuzzed control-API requests (random manifests of every kind) against a whole embedded Nerve.

Invariants: never a 5xx (a bad manifest is a 4xx naming the field); after every request the store is
consistent: every object any list shows can be got; /metrics answers 200.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any
from urllib.parse import quote

from hypothesis import given
from yarl import URL

from tests.fuzz.conftest import CONTROL_CASES, PROFILE, Harness, profile
from tests.fuzz.control_strategies import apply_body
from tests.fuzz.observe import metrics

KINDS = ["brokers", "triggers", "kafkasources", "configmaps", "services", "namespaces"]
CONSISTENCY_EVERY = 50


def _dumps(body: Any) -> bytes:
    # Deeply nested manifests are the point; the standard encoder needs the recursion room.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        return json.dumps(body).encode()
    finally:
        sys.setrecursionlimit(limit)


async def _inconsistent(harness: Harness) -> list[str]:
    stack = harness.stack
    problems = []
    for kind in KINDS:
        async with stack.session.get(f"{stack.api}/api/v1/resources/{kind}") as response:
            if response.status != 200:
                problems.append(f"list {kind}: {response.status} {(await response.read())[:200]!r}")
                continue
            items = (await response.json())["items"]
        for item in items:
            meta = item.get("metadata", {})
            # Names as stored (a trailing newline too, defect 14), percent-encoded exactly once.
            namespace, name = (quote(str(meta.get(k) or "_"), safe="") for k in ("namespace", "name"))
            url = URL(f"{stack.api}/api/v1/resources/{kind}/{namespace}/{name}", encoded=True)
            async with stack.session.get(url) as got:
                if got.status != 200 and not meta.get("deletionTimestamp"):
                    problems.append(f"{kind} {meta.get('namespace')!r}/{meta.get('name')!r} is listed but get "
                                    f"answers {got.status}")
    return problems


def test_fuzzed_control_api_requests_keep_every_invariant(control_harness: Harness) -> None:
    harness = control_harness
    stack = harness.stack
    statuses: Counter[int] = Counter()
    server_errors: list[tuple[int, bytes, bytes]] = []
    inconsistencies: list[str] = []

    async def post(body: bytes, content_type: str) -> tuple[int, bytes]:
        async with stack.session.post(f"{stack.api}/api/v1/apply", data=body,
                                      headers={"Content-Type": content_type}) as response:
            return response.status, await response.read()

    @profile(CONTROL_CASES)
    @given(apply_body)
    def one(body: Any) -> None:
        wire = _dumps(body)
        status, answer = harness.run(post(wire, "application/json"))
        statuses[status] += 1
        if status >= 500:
            server_errors.append((status, wire, answer))
        if sum(statuses.values()) % CONSISTENCY_EVERY == 0 and not inconsistencies:
            inconsistencies.extend(harness.run(_inconsistent(harness)))

    one()
    inconsistencies.extend(harness.run(_inconsistent(harness)))
    final = harness.run(metrics(stack))
    print(f"\nfuzz control API ({PROFILE}): {sum(statuses.values())} applies; by status "
          f"{dict(sorted(statuses.items()))}; 5xx {len(server_errors)}; inconsistencies {len(inconsistencies)}")
    problems = []
    if server_errors:
        smallest: dict[bytes, str] = {}
        for status, wire, answer in sorted(server_errors, key=lambda e: len(e[1])):
            reason = answer[:160]
            smallest.setdefault(reason, f"{status} {reason!r} <- {wire[:400]!r}")
        problems.append(f"{len(server_errors)} applies answered 5xx; smallest per reason:\n    "
                        + "\n    ".join(list(smallest.values())[:8]))
    if inconsistencies:
        problems.append("store inconsistent:\n    " + "\n    ".join(inconsistencies[:8]))
    if final.status != 200:
        problems.append(f"/metrics answered {final.status}")
    assert not problems, "\n".join(problems)
