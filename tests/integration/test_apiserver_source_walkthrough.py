"""Seed 003's ApiServerSource walkthrough as written (examples/apiserver-source/), with the `nerve` CLI
against an embedded Nerve: the busybox Pod's kubelet Events reach the event-display process, whose log
shows `"message": "Started container busybox"`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from tests.support.stack import Stack, eventually

NERVE = str(Path(sys.executable).with_name("nerve"))
EXAMPLES = Path(__file__).parents[2] / "examples"
SOURCE = EXAMPLES / "apiserver-source"


async def nerve(stack: Stack, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(NERVE, *args, env=stack.cli_env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def _pods(stack: Stack, **labels: str) -> list[dict[str, Any]]:
    async with stack.session.get(f"{stack.api}/api/v1/resources/pods?namespace=default") as response:
        items: list[dict[str, Any]] = (await response.json())["items"]
    return [p for p in items if all(p["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())]


async def _display_log(stack: Stack) -> str:
    [pod] = await _pods(stack, app="event-display")
    async with stack.session.get(f"{stack.api}/api/v1/logs/default/{pod['metadata']['name']}") as response:
        assert response.status == 200, await response.text()
        return await response.text()


async def test_the_seed_apiserver_source_walkthrough(stack: Stack) -> None:
    code, out, err = await nerve(stack, "apply", "-f", str(EXAMPLES / "event-display" / "01-event-display.yaml"))
    assert code == 0, err

    async def display_running() -> bool:
        deployment = await stack.get("deployments", "default", "event-display")
        return bool(deployment.get("status", {}).get("readyReplicas") == 1)

    await eventually(display_running, timeout=20)

    code, out, err = await nerve(stack, "apply", "-f", str(SOURCE / "01-rbac.yaml"))
    assert code == 0, err
    assert out.splitlines() == ["serviceaccount/events-sa created",
                                "clusterrole.rbac.authorization.k8s.io/event-watcher created",
                                "clusterrolebinding.rbac.authorization.k8s.io/k8s-ra-event-watcher created"]
    assert "grants nothing" in err

    code, out, err = await nerve(stack, "apply", "-f", str(SOURCE / "02-apiserversource.yaml"))
    assert (code, out.strip()) == (0, "apiserversource.sources.knative.dev/test-apiserver-source created"), err
    code, out, _ = await nerve(stack, "get", "apiserversource")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SINK", "AGE", "READY", "REASON"]
    name, sink, _age, ready = row.split()
    [display] = await _pods(stack, app="event-display")
    assert (name, sink, ready) == ("test-apiserver-source", f"http://127.0.0.1:{display['status']['port']}", "True")

    code, out, err = await nerve(stack, "apply", "-f", str(SOURCE / "03-busybox.yaml"))
    assert code == 0, err

    async def started_shown() -> bool:
        return '"message": "Started container busybox"' in await _display_log(stack)

    await eventually(started_shown, timeout=20)
    code, _, err = await nerve(stack, "delete", "pod", "busybox")
    assert code == 0, err
    # $ kubectl logs -l app=event-display --tail=100 | grep message
    code, log, err = await nerve(stack, "logs", "-l", "app=event-display", "--tail=100")
    assert code == 0, err
    messages = [line.strip() for line in log.splitlines() if '"message"' in line]
    assert '"message": "Created container busybox",' in messages, log
    assert '"message": "Started container busybox",' in messages, log
    whole = await _display_log(stack)
    assert "type: dev.knative.apiserver.resource.add" in whole
    assert f"source: {stack.api}" in whole
    assert "subject: /apis/v1/namespaces/default/events/busybox." in whole
