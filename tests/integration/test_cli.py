"""The `nerve` CLI against a running control API: output formats, describe, delete, send.

The real `nerve` executable runs as a subprocess (asynchronously, so the stack in this test's event
loop keeps serving it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import yaml

from tests.support.receiver import Receiver
from tests.support.stack import Stack

NERVE = str(Path(sys.executable).with_name("nerve"))

MANIFESTS = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: team-a}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: other, namespace: team-b}
"""


async def nerve(stack: Stack, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        NERVE,
        *args,
        env={**os.environ, "NERVE_SERVER": stack.api},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin else None)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_get_in_every_format_and_across_namespaces(stack: Stack) -> None:
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=MANIFESTS)
    assert code == 0, err
    assert out.splitlines() == [
        "broker.eventing.knative.dev/default created",
        "broker.eventing.knative.dev/other created",
    ]
    code, out, _ = await nerve(stack, "get", "brokers", "-A")
    lines = out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "URL", "AGE", "READY", "REASON"]
    assert [line.split()[:2] for line in lines[1:]] == [["team-a", "default"], ["team-b", "other"]]
    code, out, _ = await nerve(stack, "get", "broker", "default", "-n", "team-a", "-o", "json")
    obj = json.loads(out)
    assert obj["status"]["address"]["url"] == f"{stack.ingress}/team-a/default"
    assert obj["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "MTChannelBasedBroker"
    code, out, _ = await nerve(stack, "get", "Brokers.eventing.knative.dev", "-n", "team-b", "-o", "yaml")
    listed = yaml.safe_load(out)
    assert listed["kind"] == "List"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["other"]
    code, out, err = await nerve(stack, "get", "triggers", "-n", "team-a")
    assert code == 0
    assert out == ""
    assert "No resources found in team-a namespace." in err


async def test_describe_shows_conditions_and_delete_removes(stack: Stack, tmp_path: Path) -> None:
    manifest = tmp_path / "broker.yaml"
    manifest.write_text(MANIFESTS)
    assert (await nerve(stack, "apply", "-f", str(manifest)))[0] == 0
    code, out, _ = await nerve(stack, "describe", "broker", "default", "-n", "team-a")
    assert code == 0
    assert "Address:      " + f"{stack.ingress}/team-a/default" in out
    conditions = out[out.index("Conditions:") :].splitlines()
    assert conditions[1].split()[:2] == ["TYPE", "STATUS"]
    assert any(line.split()[:2] == ["Ready", "True"] for line in conditions[2:])
    code, out, _ = await nerve(stack, "delete", "broker", "default", "-n", "team-a")
    assert (code, out.strip()) == (0, 'broker "default" deleted')
    code, _, err = await nerve(stack, "get", "broker", "default", "-n", "team-a")
    assert code == 2
    assert "not found" in err
    code, out, _ = await nerve(stack, "delete", "-f", str(manifest))
    assert code == 2  # the first document is already gone
    code, out, _ = await nerve(stack, "get", "brokers", "-A")
    assert "other" in out


async def test_send_delivers_one_event_and_reports_refusals(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(
        MANIFESTS,
        f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: all, namespace: team-a}}
spec: {{broker: default, subscriber: {{uri: "{receiver.url}"}}}}
""",
    )
    url = f"{stack.ingress}/team-a/default"
    code, out, err = await nerve(
        stack,
        "send",
        url,
        "--type",
        "greeting",
        "--source",
        "cli",
        "--data",
        '{"a": 1}',
        "--id",
        "cli-1",
        "--ext",
        "region=eu",
    )
    assert (code, out.strip()) == (0, "202 cli-1"), err
    [event] = await receiver.wait_for(1)
    assert (event.type, event.source, event.attributes["region"], event.data) == ("greeting", "cli", "eu", b'{"a": 1}')
    code, _, err = await nerve(stack, "send", f"{stack.ingress}/team-a/missing", "--type", "t", "--source", "s")
    assert code == 1
    assert "404" in err and 'brokers.eventing.knative.dev "missing" not found' in err
    code, _, err = await nerve(stack, "send", url, "--type", "t", "--source", "s", "--ext", "Bad=1")
    assert code == 2
    assert "bad" in err.lower() and "lower-case" in err
