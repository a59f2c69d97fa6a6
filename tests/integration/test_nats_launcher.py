"""The project's own nats-server launcher (scripts/nats_local.py), as tests and `make nats` use it:
ready means JetStream answers, a busy port or a second start of a store is refused with a reason, and a
restart keeps the port and the streams."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from channels.base import TopicSpec
from channels.nats import NatsBackend, NatsSettings
from core.events import Event
from tests.support.launchers import SCRIPTS, nats_launcher

pytestmark = pytest.mark.nats


async def test_start_is_ready_for_jetstream_and_a_restart_keeps_port_and_streams(tmp_path: Path) -> None:
    launcher = nats_launcher()
    started = time.perf_counter()
    server = launcher.start(tmp_path / "store")
    took = time.perf_counter() - started
    try:
        print(f"\nnats-server with JetStream ready in {took * 1000:.0f} ms")
        info = launcher.server_info(server.port)
        assert info is not None and info["jetstream"] is True
        channel = NatsBackend(NatsSettings(url=server.url))
        await channel.start()
        try:
            await channel.ensure_topic(TopicSpec("kept"))
            await channel.publish("kept", Event({"specversion": "1.0", "id": "1", "source": "/l", "type": "t"}))
        finally:
            await channel.stop()
        port, url = server.port, server.url
        assert server.restart(crash=True) is server
        assert (server.port, server.url) == (port, url)
        channel = NatsBackend(NatsSettings(url=server.url))
        await channel.start()
        try:
            sub = channel.open_reader("kept", "reader", from_start=True)
            await sub.start()
            [delivery] = await sub.receive(10)
            assert delivery.event.id == "1"
            await sub.stop()
        finally:
            await channel.stop()
    finally:
        server.stop()
    assert not server.alive()


def test_a_second_start_of_a_store_and_a_busy_port_are_refused(tmp_path: Path) -> None:
    launcher = nats_launcher()
    server = launcher.start(tmp_path / "one")
    try:
        with pytest.raises(launcher.NatsError, match="already running"):
            launcher.start(tmp_path / "one")
        with pytest.raises(launcher.NatsError, match="in use"):
            launcher.start(tmp_path / "two", server.port)
    finally:
        server.stop()


def test_the_command_line_starts_and_stops_a_detached_server(tmp_path: Path) -> None:
    script = str(SCRIPTS / "nats_local.py")
    store = str(tmp_path / "cli")
    started = subprocess.run([sys.executable, script, "start", "--store-dir", store],
                             capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url.startswith("nats://127.0.0.1:")
    port = int(url.rpartition(":")[2])
    assert nats_launcher().server_info(port) is not None
    stopped = subprocess.run([sys.executable, script, "stop", "--store-dir", store],
                             capture_output=True, text=True, timeout=60, check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert nats_launcher().server_info(port) is None
    again = subprocess.run([sys.executable, script, "stop", "--store-dir", str(tmp_path / "never")],
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1
    assert "no nats-server was started" in again.stderr
