"""A SinkBinding on its own, through the control API of a real embedded Nerve whose workloads run as local
processes (behaviour 71: K_SINK injected into Deployment and Job subjects so they can deliver events):
a Deployment bound by name gets new pods with K_SINK and K_CE_OVERRIDES, and loses them again when the
binding is deleted; a Job bound by a matchExpressions selector gets them, an excluded one does not."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.support.receiver import Receiver
from tests.support.stack import Stack, eventually

PRODUCER = str(Path(__file__).resolve().parents[1] / "support" / "producer.py")


async def _pods(stack: Stack, **labels: str) -> list[dict[str, Any]]:
    async with stack.session.get(f"{stack.api}/api/v1/resources/pods?namespace=default") as response:
        items: list[dict[str, Any]] = (await response.json())["items"]
    return [p for p in items if labels.items() <= (p["metadata"].get("labels") or {}).items()
            and not p["metadata"].get("deletionTimestamp")]


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env") or []}


def _binding(name: str, subject: dict[str, Any], sink: str) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"subject": subject, "sink": {"uri": sink}, "ceOverrides": {"extensions": {"team": "a"}}}}


async def test_a_deployment_bound_by_name_gets_k_sink_and_loses_it_with_the_binding(stack: Stack) -> None:
    receiver = Receiver()
    url = await receiver.start()
    try:
        labels = {"app": "producer"}
        await stack.apply({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "producer", "namespace": "default", "labels": {"tier": "events"}},
            "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "containers": [{"name": "producer", "image": "python",
                                "command": [sys.executable, PRODUCER, "--count", "0", "--period", "0.3"]}]}}}})
        [unbound] = await _pods(stack, app="producer")
        assert "K_SINK" not in _env(unbound)

        await stack.apply(_binding("by-name", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "producer"},
                                   url))

        async def rebound() -> bool:
            pods = await _pods(stack, app="producer")
            return len(pods) == 1 and _env(pods[0]).get("K_SINK") == url
        await eventually(rebound, timeout=20)
        await eventually(lambda: len(receiver.events) >= 1, timeout=20)
        event = receiver.events[0]
        assert event.attributes["team"] == "a"
        assert json.loads(event.data or b"")["env"]["K_CE_OVERRIDES"] == '{"extensions":{"team":"a"}}'
        binding = await stack.get("sinkbinding", "default", "by-name")
        assert {c["type"]: c["status"] for c in binding["status"]["conditions"]} == {
            "Ready": "True", "SinkProvided": "True", "SinkBindingAvailable": "True"}

        await stack.delete("sinkbindings", "default", "by-name")

        async def undone() -> bool:
            pods = await _pods(stack, app="producer")
            return len(pods) == 1 and "K_SINK" not in _env(pods[0])
        await eventually(undone, timeout=20)
    finally:
        await receiver.stop()


async def test_jobs_bound_by_selector_except_an_excluded_one(stack: Stack) -> None:
    receiver = Receiver()
    url = await receiver.start()
    try:
        await stack.apply(_binding("by-selector", {
            "apiVersion": "batch/v1", "kind": "Job",
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["once", "excluded"]}]},
        }, url))

        def job(name: str, **labels: str) -> dict[str, Any]:
            return {"apiVersion": "batch/v1", "kind": "Job",
                    "metadata": {"name": name, "namespace": "default", "labels": {"app": name, **labels}},
                    "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                        {"name": "send", "image": "python", "command": [sys.executable, PRODUCER],
                         "args": ["--type", f"dev.nerve.test.{name}"]}]}}}}
        await stack.apply(job("once"), job("excluded", **{"bindings.knative.dev/exclude": "true"}))

        async def finished(name: str) -> dict[str, Any] | None:
            obj = await stack.get("job", "default", name)
            done = {c["type"] for c in obj.get("status", {}).get("conditions") or [] if c.get("status") == "True"}
            return obj if done & {"Complete", "Failed"} else None
        await eventually(lambda: finished("once"), timeout=20)
        await eventually(lambda: finished("excluded"), timeout=20)
        assert {c["type"] for c in (await finished("once") or {})["status"]["conditions"]} >= {"Complete"}
        assert {c["type"] for c in (await finished("excluded") or {})["status"]["conditions"]} >= {"Failed"}
        assert [e.type for e in receiver.events] == ["dev.nerve.test.once"]
        assert receiver.events[0].attributes["team"] == "a"
    finally:
        await receiver.stop()
