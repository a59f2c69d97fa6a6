"""Knative's Sequence and Parallel walkthroughs, from the files under examples/ as written.

`nerve apply -f <example dir>` (the CLI, against a running Nerve) applies Knative's flow YAML unchanged
next to the stand-in Services; the functions Knative runs as container images (appender, filters,
transformers, event_display) are local HTTP servers (tests/support/functions.py). The only liberty
taken: the stand-ins listen on free ports, so the copied 01-services.yaml has its URLs adjusted. The
PingSource of each walkthrough is played by the test, sending the event it would send to the flow's
address (`status.address.url`, shown by `nerve get`).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.events import Event
from tests.support import functions
from tests.support.receiver import Receiver, Script
from tests.support.stack import Stack, eventually, running_stack

REPO = Path(__file__).resolve().parents[2]
NERVE = str(Path(sys.executable).with_name("nerve"))
PING_SOURCE = "/apis/v1/namespaces/default/pingsources/ping-source"
pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path / "state") as s:
        yield s


class Functions:
    """The local processes standing in for an example's Services, by the port its 01-services.yaml names."""

    def __init__(self) -> None:
        self.by_port: dict[int, Receiver] = {}

    async def start(self, port: int, script: Script | None = None) -> Receiver:
        receiver = Receiver(script)
        await receiver.start()
        self.by_port[port] = receiver
        return receiver

    async def stop(self) -> None:
        for receiver in self.by_port.values():
            await receiver.stop()

    def example(self, name: str, into: Path) -> Path:
        """A copy of examples/<name> whose stand-in URLs point at these functions."""
        target = into / name
        shutil.copytree(REPO / "examples" / name, target)
        services = target / "01-services.yaml"
        text = services.read_text()
        for port, receiver in self.by_port.items():
            text = text.replace(f"http://127.0.0.1:{port}/", receiver.url)
        assert not re.search(r"127\.0\.0\.1:91\d\d", text), "a stand-in the test did not start"
        services.write_text(text)
        return target


@pytest.fixture
async def fns() -> AsyncIterator[Functions]:
    f = Functions()
    yield f
    await f.stop()


def nerve(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NERVE, *args], env=stack.cli_env, capture_output=True, text=True, timeout=60)


async def apply(stack: Stack, directory: Path) -> str:
    result = await asyncio.to_thread(nerve, stack, "apply", "-f", str(directory))
    assert result.returncode == 0, result.stderr
    return result.stdout


async def ready(stack: Stack, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def is_ready() -> bool:
        found.update(await stack.get(kind, "default", name))
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in found.get("status", {}).get("conditions", []))

    await eventually(is_ready, timeout=20)
    return found


async def ping(stack: Stack, url: str, data: str, **attributes: str) -> None:
    """What the walkthrough's PingSource sends."""
    headers = {"ce-specversion": "1.0", "ce-id": attributes.pop("id", "ping-1"), "ce-source": PING_SOURCE,
               "ce-type": "dev.knative.sources.ping", "content-type": "application/json",
               **{f"ce-{k}": v for k, v in attributes.items()}}
    async with stack.session.post(url, data=data.encode(), headers=headers) as response:
        assert response.status == 202, await response.text()


def message(event: Event) -> str:
    return str(json.loads(event.data or b"{}")["message"])


async def start_appenders(fns: Functions, count: int) -> list[Receiver]:
    return [await fns.start(9101 + i, functions.appender(f" - Handled by {i}")) for i in range(count)]


async def test_sequence_with_reply(stack: Stack, fns: Functions, tmp_path: Path) -> None:
    await start_appenders(fns, 3)
    display = await fns.start(9100)
    applied = await apply(stack, fns.example("sequence-with-reply", tmp_path))
    assert "sequence.flows.knative.dev/sequence created" in applied
    seq = await ready(stack, "sequences", "sequence")
    url = seq["status"]["address"]["url"]
    assert url.endswith("/channels/default/sequence-kn-sequence-0")

    table = await asyncio.to_thread(nerve, stack, "get", "sequences", "-n", "default")
    header, row = table.stdout.strip().splitlines()
    assert header.split() == ["NAME", "URL", "AGE", "READY", "REASON"]
    assert row.split()[:2] == ["sequence", url] and row.split()[3] == "True"
    as_yaml = yaml.safe_load((await asyncio.to_thread(nerve, stack, "get", "sequence", "sequence", "-n", "default",
                                                      "-o", "yaml")).stdout)
    assert [c["channel"]["name"] for c in as_yaml["status"]["channelStatuses"]] == [
        f"sequence-kn-sequence-{i}" for i in range(3)]
    assert [(s["subscription"]["name"], s["ready"]["status"]) for s in as_yaml["status"]["subscriptionStatuses"]] == [
        (f"sequence-kn-sequence-{i}", "True") for i in range(3)]
    described = (await asyncio.to_thread(nerve, stack, "describe", "sequence", "sequence", "-n", "default")).stdout
    assert f"Address:      {url}" in described
    assert re.search(r"^  ChannelsReady\s+True", described, re.M), described

    await ping(stack, url, '{"message": "Hello world!"}')
    [event] = await display.wait_for(1)
    await display.settle()
    assert len(display.events) == 1
    assert message(event) == "Hello world! - Handled by 0 - Handled by 1 - Handled by 2"
    assert (event.type, event.source, event.id) == ("dev.knative.sources.ping", PING_SOURCE, "ping-1")


async def test_sequence_terminal(stack: Stack, fns: Functions, tmp_path: Path) -> None:
    first, second, third = await start_appenders(fns, 3)
    await apply(stack, fns.example("sequence-terminal", tmp_path))
    seq = await ready(stack, "sequences", "sequence")
    assert "reply" not in seq["spec"]
    await ping(stack, seq["status"]["address"]["url"], '{"message": "Hello world!"}')
    for step, seen in ((first, "Hello world!"), (second, "Hello world! - Handled by 0"),
                       (third, "Hello world! - Handled by 0 - Handled by 1")):
        [event] = await step.wait_for(1)
        assert message(event) == seen
    await third.settle()
    assert [len(s.events) for s in (first, second, third)] == [1, 1, 1]


async def test_sequence_reply_to_sequence(stack: Stack, fns: Functions, tmp_path: Path) -> None:
    await start_appenders(fns, 6)
    display = await fns.start(9100)
    await apply(stack, fns.example("sequence-reply-to-sequence", tmp_path))
    await ready(stack, "sequences", "second-sequence")
    first = await ready(stack, "sequences", "first-sequence")
    await ping(stack, first["status"]["address"]["url"], '{"message": "Hello world!"}')
    [event] = await display.wait_for(1)
    await display.settle()
    assert len(display.events) == 1
    assert message(event) == "Hello world!" + "".join(f" - Handled by {i}" for i in range(6))
    assert event.type == "dev.knative.sources.ping"


async def test_parallel_even_odd(stack: Stack, fns: Functions, tmp_path: Path) -> None:
    await fns.start(9111, functions.passes(functions.minute_is_even))
    await fns.start(9112, functions.passes(lambda e: not functions.minute_is_even(e)))
    await fns.start(9113, functions.transformer({"message": "we are even!"}))
    await fns.start(9114, functions.transformer({"message": "this is odd!"}))
    display = await fns.start(9100)
    await apply(stack, fns.example("parallel-even-odd", tmp_path))
    par = await ready(stack, "parallels", "odd-even-parallel")
    url = par["status"]["address"]["url"]
    assert url.endswith("/channels/default/odd-even-parallel-kn-parallel")
    table = await asyncio.to_thread(nerve, stack, "get", "parallels", "-n", "default")
    assert table.stdout.split()[:5] == ["NAME", "URL", "AGE", "READY", "REASON"]

    await ping(stack, url, '{"message": "Even or odd?"}', id="even", time="2020-03-03T21:24:00Z")
    await ping(stack, url, '{"message": "Even or odd?"}', id="odd", time="2020-03-03T21:23:00Z")
    await display.wait_for(2)
    await display.settle()
    assert sorted((e.id, message(e)) for e in display.events) == [("even", "we are even!"), ("odd", "this is odd!")]
