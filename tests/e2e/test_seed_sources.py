"""Seed 003's "container source" and "sink binding" walkthroughs (../shared/seeds/003_c7549bdb00436181.txt),
applied as written from examples/ under `nerve up`, against the seed's event-display Deployment + Service.
What the seed reads with `kubectl logs -l app=event-display` is read from the event-display pod's log.

The one liberty: the CronJob ticks every 2 seconds (a leading seconds field) instead of every minute.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.nerve_up import NerveUp, nerve_up
from tests.support.stack import eventually

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DISPLAY = EXAMPLES / "event-display" / "01-event-display.yaml"
BLOCK = "☁️  cloudevents.Event\n"


async def _display_up(up: NerveUp) -> None:
    await up.apply(DISPLAY)

    async def available() -> bool:
        dep = await up.get("deployment", "event-display")
        return any(c["type"] == "Available" and c["status"] == "True"
                   for c in (dep or {}).get("status", {}).get("conditions", []))
    await eventually(available, timeout=30)


async def _displayed(up: NerveUp, at_least: int, timeout: float = 30) -> list[str]:
    """The events the event-display pod printed, once there are `at_least`."""
    blocks: list[str] = []

    async def enough() -> bool:
        nonlocal blocks
        [pod] = await up.pods(app="event-display")
        blocks = (await up.logs("default", pod["metadata"]["name"])).split(BLOCK)[1:]
        return len(blocks) >= at_least
    await eventually(enough, timeout=timeout, interval=0.2)
    return blocks


def _phase(pod: dict[str, Any]) -> str:
    return str(pod.get("status", {}).get("phase"))


def _attr(block: str, name: str) -> str | None:
    found = re.search(rf"^  {re.escape(name)}: (.*)$", block, re.MULTILINE)
    return found.group(1) if found else None


def _data(block: str) -> dict[str, object]:
    data: dict[str, object] = json.loads("\n".join(line[2:] for line in block.split("Data,\n", 1)[1].splitlines()))
    return data


async def test_the_heartbeats_container_source_delivers_to_the_event_display(tmp_path: Path) -> None:
    async with nerve_up(tmp_path) as up:
        await _display_up(up)
        out = await up.apply(EXAMPLES / "container-source" / "containersource.yaml")
        assert "containersource.sources.knative.dev/test-container-source created" in out
        blocks = await _displayed(up, 2)
        for block in blocks[:2]:
            assert _attr(block, "type") == "dev.knative.eventing.samples.heartbeat"
            assert _attr(block, "source") == "https://knative.dev/eventing/cmd/heartbeats/#event-test/mypod"
        assert [_data(b)["id"] for b in blocks[:2]] == [1, 2]
        # As the seed reads them: `kubectl logs -l app=event-display --tail=100`.
        code, out, err = await up.nerve("logs", "-l", "app=event-display", "--tail=100")
        assert code == 0, err
        assert out.count("type: dev.knative.eventing.samples.heartbeat") >= 2
        assert '"id": 1,' in out and '"id": 2,' in out

        source = await up.get("containersource", "test-container-source")
        assert source is not None
        service_url = source["status"]["sinkUri"]
        code, table, err = await up.nerve("get", "containersource")
        assert code == 0, err
        header, row = table.strip().splitlines()
        assert header.split() == ["NAME", "SINK", "AGE", "READY", "REASON"]
        assert row.split()[0:2] == ["test-container-source", service_url]
        assert row.split()[3] == "True"
        # The seed's `kubectl get pod ... | grep K_SINK`: the pod carries the binding's K_SINK.
        [pod] = await up.pods(**{"sources.knative.dev/containerSource": "test-container-source"})
        assert pod["metadata"]["name"].startswith("test-container-source-deployment-")
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["K_SINK"] == service_url
        assert env["K_CE_OVERRIDES"] == ""


async def _cron_pods(up: NerveUp) -> list[dict[str, Any]]:
    """The pods of heartbeat-cron's Jobs (a Job's pods carry its job-name label, not the Job's labels)."""
    return [p for p in await up.pods() if str(p["metadata"].get("labels", {}).get("job-name", ""))
            .startswith("heartbeat-cron-")]


async def test_the_cronjob_fails_until_the_sink_binding_then_its_one_shot_heartbeat_arrives(tmp_path: Path) -> None:
    examples = tmp_path / "sink-binding"
    shutil.copytree(EXAMPLES / "sink-binding", examples)
    cronjob = examples / "01-cronjob.yaml"
    cronjob.write_text(cronjob.read_text().replace('schedule: "* * * * *"', 'schedule: "*/2 * * * * *"'))
    async with nerve_up(tmp_path) as up:
        await _display_up(up)
        await up.apply(cronjob)

        async def a_pod_failed() -> bool:
            return any(_phase(p) == "Failed" for p in await _cron_pods(up))
        await eventually(a_pod_failed, timeout=30, interval=0.2)
        failed = next(p for p in await _cron_pods(up) if _phase(p) == "Failed")
        assert "required key K_SINK missing value" in await up.logs("default", failed["metadata"]["name"])
        assert not [e for e in failed["spec"]["containers"][0].get("env", []) if e["name"].startswith("K_")]

        out = await up.apply(examples / "02-sinkbinding.yaml")
        assert "sinkbinding.sources.knative.dev/test-sink-binding created" in out
        blocks = await _displayed(up, 1)
        first = blocks[0]
        assert _attr(first, "type") == "dev.knative.eventing.samples.heartbeat"
        assert _attr(first, "hello") == "world"
        assert _data(first)["id"] == 1
        assert re.fullmatch(r"https://knative.dev/eventing/cmd/heartbeats/#default/heartbeat-cron-\d+-\w+",
                            _attr(first, "source") or "")
        # Every Job's pod made since sends one heartbeat, id 1 ("consumer 收到了每分钟 id 都为1的 cloudevent 事件").
        blocks = await _displayed(up, 2)
        assert [_data(b)["id"] for b in blocks[:2]] == [1, 1]

        binding = await up.get("sinkbinding", "test-sink-binding")
        assert binding is not None
        code, table, err = await up.nerve("get", "sinkbindings")
        assert code == 0, err
        header, row = table.strip().splitlines()
        assert header.split() == ["NAME", "SINK", "AGE", "READY", "REASON"]
        assert row.split()[0:2] == ["test-sink-binding", binding["status"]["sinkUri"]]
        assert row.split()[3] == "True"
        bound = [p for p in await _cron_pods(up) if _phase(p) == "Succeeded"]
        assert bound
        env = {e["name"]: e.get("value") for e in bound[0]["spec"]["containers"][0]["env"]}
        assert (env["K_SINK"], env["K_CE_OVERRIDES"]) == (binding["status"]["sinkUri"],
                                                          '{"extensions":{"hello":"world"}}')
