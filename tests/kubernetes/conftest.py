"""Every test here runs against real Kubernetes parts: the API server of tests/fixtures/k8s.py and the
helm binary scripts/k8s_tools.py builds. They carry the `kubernetes` marker."""

from __future__ import annotations

import pytest

from tests.fixtures.k8s import k8s_client, kube_apiserver

__all__ = ["k8s_client", "kube_apiserver"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kubernetes/" in item.nodeid and item.get_closest_marker("kubernetes") is None:
            item.add_marker(pytest.mark.kubernetes)
