"""The pure parts of OIDC on Kubernetes: which ServiceAccount a subject's TokenRequest goes to, and which
OIDC ServiceAccounts (with which owner) a contract needs. Against the API server: tests/kubernetes."""

from __future__ import annotations

import pytest

from control.operator.service_accounts import wanted
from core import oidc
from core.contract import Contract, Egress, EgressAuth, Reference, Resource, Source
from core.kube_tokens import TokenSettings, account_of, sender_tokens


@pytest.mark.parametrize(("sub", "expected"), [
    ("system:serviceaccount:ns1:t1-oidc-eventing.knative.dev-trigger", ("ns1", "t1-oidc-eventing.knative.dev-trigger")),
    ("system:serviceaccount:team:producer", ("team", "producer")),
])
def test_a_service_account_subject_names_the_token_request(sub: str, expected: tuple[str, str]) -> None:
    assert account_of(sub) == expected


@pytest.mark.parametrize("sub", ["alice", "system:serviceaccount::x", "system:serviceaccount:ns", "user:ns:x:y"])
def test_other_subjects_get_no_token_request(sub: str) -> None:
    with pytest.raises(oidc.TokenUnavailable, match="ServiceAccounts only"):
        account_of(sub)


def _egress(kind: str, name: str, uid: str, account: str | None) -> Egress:
    auth = EgressAuth(oidc.subject("ns1", account), account) if account else None
    return Egress(f"e-{name}", Reference(uid, "ns1", name, kind), "g", "http://sink", auth=auth)


def test_the_contract_names_the_service_accounts_and_their_owners() -> None:
    trigger = oidc.service_account_name("eventing.knative.dev", "trigger", "t1")
    ping = oidc.service_account_name("sources.knative.dev", "pingsource", "p1")
    broker = Resource("b", Reference("b", "ns1", "default", "Broker"), "nats", "topic", "/ns1/default",
                      (_egress("Trigger", "t1", "uid-t1", trigger), _egress("Trigger", "t2", "uid-t2", None)))
    source = Source("p", Reference("uid-p1", "ns1", "p1", "PingSource"), _egress("PingSource", "p1", "uid-p1", ping))
    assert wanted(Contract(1, (broker,), (source,))) == {
        ("ns1", trigger): {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "name": "t1",
                           "uid": "uid-t1", "controller": True, "blockOwnerDeletion": False},
        ("ns1", ping): {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "name": "p1",
                        "uid": "uid-p1", "controller": True, "blockOwnerDeletion": False},
    }
    assert wanted(Contract(1, (broker,))).keys() == {("ns1", trigger)}
    assert wanted(Contract(1)) == {}  # OIDC off: no egress has auth, every labelled account goes


def test_the_token_source_setting_selects_the_implementation() -> None:
    assert sender_tokens(TokenSettings(), "", "") is None  # no control URL: nothing to ask
    assert sender_tokens(TokenSettings(), "http://control:8081", "t") is not None
    assert sender_tokens(TokenSettings(token_source="kubernetes"), "", "") is not None
