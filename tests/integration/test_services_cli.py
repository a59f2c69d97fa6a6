"""`nerve control|ingress|dispatcher|sources`: the services' own command lines, reached through `nerve`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def nerve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nerve", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


@pytest.mark.parametrize("service", ["control", "ingress", "dispatcher", "sources"])
def test_each_service_lists_its_flags_and_their_environment_names(service: str) -> None:
    done = nerve(service, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: nerve {service} ")
    assert "--drain-timeout FLOAT" in done.stdout and "NERVE_DRAIN_TIMEOUT" in done.stdout
    assert "--host STR" in done.stdout and "NERVE_HOST" in done.stdout


def test_a_bad_flag_is_one_line_naming_it_and_exit_2() -> None:
    done = nerve("dispatcher", "--drain-timeout", "-1")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("error: --drain-timeout -1.0: must be at least 0"), done.stderr


def test_a_bad_environment_value_names_the_variable() -> None:
    done = nerve("ingress", NERVE_DRAIN_TIMEOUT="soon")
    assert done.returncode == 2
    assert "NERVE_DRAIN_TIMEOUT='soon': expected a number" in done.stderr, done.stderr
