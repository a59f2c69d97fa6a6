"""How sources/kube_watch.py reports the API server's answers to the adapter: 410 Gone is `Expired` (list
again), 404 NotFound, and anything else (401, 403, 5xx) a BackendError naming the status and the message."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from core.errors import BackendError, NotFound
from core.watch import Expired
from sources.kube_watch import _translated


def _exc(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"kind": "Status", "message": message}).encode()
    return exc


@pytest.mark.parametrize(("status", "kind"), [(410, Expired), (404, NotFound), (403, BackendError),
                                              (500, BackendError)])
def test_answers_are_translated(status: int, kind: type[Exception]) -> None:
    translated = _translated(_exc(status, "too old resource version: 1 (773)"))
    assert type(translated) is kind
    assert "too old resource version" in str(translated)


def test_a_refusal_names_the_status() -> None:
    assert str(_translated(_exc(403, 'events is forbidden: User "x" cannot list'))) == \
        'the Kubernetes API server answered 403: events is forbidden: User "x" cannot list'
