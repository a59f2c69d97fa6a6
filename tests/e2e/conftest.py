"""The e2e fixtures: a cluster of separate Nerve processes on a real backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.launchers import backend_params
from tests.support.services import Cluster


@pytest.fixture(params=backend_params("kafka", "nats"))
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    backend: str = request.param
    connection = request.getfixturevalue("kafka_bootstrap" if backend == "kafka" else "nats_url")
    c = Cluster(tmp_path, backend, str(connection))
    c.start()
    yield c
    c.stop()
