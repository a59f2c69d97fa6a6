"""`nerve run --binding NAME -- CMD ARGS...` against a running control API: the program gets the binding's
K_SINK and K_CE_OVERRIDES, its events reach the sink with the overrides, its exit code is nerve run's, a
SIGTERM to nerve run reaches it, and a binding that is missing or has no sink is refused."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from tests.support.receiver import Receiver
from tests.support.stack import Stack, eventually

NERVE = str(Path(sys.executable).with_name("nerve"))
PRODUCER = str(Path(__file__).resolve().parents[1] / "support" / "producer.py")


def binding(name: str, sink: dict[str, object], namespace: str = "team-a") -> dict[str, object]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"subject": {"apiVersion": "apps/v1", "kind": "Deployment",
                                 "selector": {"matchLabels": {"app": "producer"}}},
                     "sink": sink, "ceOverrides": {"extensions": {"hello": "world"}}}}


async def nerve(stack: Stack, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(NERVE, *args, env=stack.cli_env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def bound(stack: Stack, name: str, namespace: str = "team-a") -> None:
    async def has_sink() -> bool:
        return bool((await stack.get("sinkbinding", namespace, name)).get("status", {}).get("sinkUri"))
    await eventually(has_sink)


async def test_the_program_gets_the_binding_s_env_and_its_events_arrive(stack: Stack) -> None:
    receiver = Receiver()
    url = await receiver.start()
    try:
        await stack.apply(binding("to-receiver", {"uri": url}))
        await bound(stack, "to-receiver")
        code, out, err = await nerve(stack, "run", "--binding", "to-receiver", "-n", "team-a", "--",
                                     sys.executable, PRODUCER, "--count", "1", "--exit-code", "3")
        assert code == 3, err
        env = json.loads(out.splitlines()[0].removeprefix("ENV "))
        assert env == {"K_SINK": url, "K_CE_OVERRIDES": '{"extensions":{"hello":"world"}}', "NAMESPACE": "team-a"}
        [event] = receiver.events
        assert (event.type, event.attributes["hello"]) == ("dev.nerve.test.produced", "world")
        assert json.loads(event.data or b"")["argv"] == ["--count", "1", "--exit-code", "3"]
        code, out, err = await nerve(stack, "run", "--binding", "to-receiver", "-n", "team-a", "--",
                                     "sh", "-c", 'echo "$K_SINK"; exit 4')
        assert (code, out) == (4, f"{url}\n"), err
    finally:
        await receiver.stop()


async def test_a_missing_binding_or_an_unresolved_sink_is_refused(stack: Stack) -> None:
    code, out, err = await nerve(stack, "run", "--binding", "nope", "-n", "team-a", "--", "sh", "-c", "exit 0")
    assert (code, out) == (2, "")
    assert err == 'error: sinkbindings.sources.knative.dev "nope" not found\n'
    await stack.apply(binding("dangling", {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                                   "name": "none"}}))
    code, out, err = await nerve(stack, "run", "--binding", "dangling", "-n", "team-a", "--",
                                 "sh", "-c", "echo ran")
    assert (code, out) == (2, "")
    assert err == ('error: sinkbinding "dangling" in namespace "team-a" has no resolved sink: '
                   "Broker team-a/none does not exist\n")
    code, _, err = await nerve(stack, "run", "--binding", "dangling", "-n", "team-a")
    assert (code, err) == (2, "error: no program to run: nerve run --binding NAME [-n NAMESPACE] -- CMD ARGS...\n")


async def test_sigterm_reaches_the_program_and_its_exit_code_comes_back(stack: Stack) -> None:
    await stack.apply(binding("term", {"uri": "http://127.0.0.1:9/"}))
    await bound(stack, "term")
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
              "print('ready', flush=True)\n"
              "time.sleep(30)\n")
    proc = await asyncio.create_subprocess_exec(NERVE, "run", "--binding", "term", "-n", "team-a", "--",
                                                sys.executable, "-c", script, env=stack.cli_env,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 7
    # Killed by a signal it does not handle: 128 + the signal, as a shell reports it.
    proc = await asyncio.create_subprocess_exec(NERVE, "run", "--binding", "term", "-n", "team-a", "--",
                                                sys.executable, "-c", "print('ready', flush=True); "
                                                "import time; time.sleep(30)",
                                                env=stack.cli_env, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"ready\n"
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 10) == 128 + signal.SIGINT
