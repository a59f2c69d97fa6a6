"""`nerve run`'s pieces: the env it gives a program from a stored SinkBinding, and signal forwarding where
signals carry no sender (macOS has no sigtimedwait). The whole command is tests/integration/test_nerve_run.py."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from nerve import run


def test_the_env_of_a_bound_binding_and_the_refusal_of_an_unbound_one() -> None:
    binding = {"metadata": {"name": "b", "namespace": "ns1"},
               "spec": {"ceOverrides": {"extensions": {"hello": "world"}}},
               "status": {"sinkUri": "http://sink.example/"}}
    assert run.binding_env(binding) == {"K_SINK": "http://sink.example/",
                                        "K_CE_OVERRIDES": '{"extensions":{"hello":"world"}}', "NAMESPACE": "ns1"}
    binding["spec"] = {}
    assert run.binding_env(binding)["K_CE_OVERRIDES"] == ""
    binding["status"] = {"conditions": [{"type": "SinkProvided", "status": "False", "message": "no Broker"}]}
    with pytest.raises(run.NotBound, match='sinkbinding "b" in namespace "ns1" has no resolved sink: no Broker'):
        run.binding_env(binding)
    binding["status"] = {}
    with pytest.raises(run.NotBound, match="has no resolved sink yet"):
        run.binding_env(binding)


def test_without_sigtimedwait_every_sigterm_is_forwarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(signal, "sigtimedwait")
    started = tmp_path / "started"
    script = ("import pathlib, signal, sys, time\n"
              "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
              f"pathlib.Path({str(started)!r}).touch()\n"
              "time.sleep(30)\n")

    def terminate_when_started() -> None:
        deadline = time.monotonic() + 20
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=terminate_when_started)
    killer.start()
    try:
        assert run.run([sys.executable, "-c", script], {}) == 7
    finally:
        killer.join()
    assert signal.getsignal(signal.SIGTERM) == before
