"""The project's own server launchers (scripts/) as tests use them, and the guard behind the markers.

`pytest -m "not kafka and not nats"` must run without a Kafka or NATS server. A test reaches a server
through the `kafka_bootstrap` / `nats_url` fixtures or a private one from `kafka_launcher()` /
`nats_launcher()`; each of those first checks that the running test carries the `kafka` or `nats`
marker and fails it, before anything starts, when it does not. Tests that take the fixtures by name
are marked at collection (tests/conftest.py); backend-parametrized ones take `backend_params()`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SERVER_FIXTURES = {"kafka_bootstrap": "kafka", "nats_url": "nats", "kafka_sasl_ssl": "kafka", "nats_tls": "nats"}
"""Fixture name -> the marker a test that uses it carries."""


def script(name: str) -> ModuleType:
    """A module of scripts/ (standard library only, so importable before and without the packages)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


free_port: Callable[[], int] = script("_server").free_port
"""A free TCP port on 127.0.0.1: the one helper the launchers, the tests and the benchmarks share."""


class _Running:
    item: pytest.Item | None = None


running = _Running()
"""The test being set up or run (tests/conftest.py sets it), for the guard of the launchers."""


def require_marker(marker: str, node: Any = None) -> None:
    """Fail the current test, naming it, unless it carries `marker`."""
    node = node if node is not None else running.item
    if node is not None and node.get_closest_marker(marker) is None:
        pytest.fail(f"{node.nodeid} uses a real {marker} server but is not marked `{marker}`: add "
                    f"pytest.mark.{marker} (or take backend_params()) so that -m 'not {marker}' leaves it out",
                    pytrace=False)


def kafka_launcher() -> ModuleType:
    require_marker("kafka")
    return script("kafka_local")


def nats_launcher() -> ModuleType:
    require_marker("nats")
    return script("nats_local")


def backend_params(*names: str) -> list[Any]:
    """Parameters for a fixture parametrized by backend name, carrying the marker of the server each needs."""
    marks = {"kafka": pytest.mark.kafka, "nats": pytest.mark.nats}
    return [pytest.param(name, marks=marks[name]) if name in marks else name for name in names]
