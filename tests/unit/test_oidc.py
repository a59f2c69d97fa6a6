"""core/oidc.py, the contract's OIDC fields and the EventPolicy builders: names, tokens, policy tables."""

from __future__ import annotations

import re
from typing import Any

import pytest

from control.reconcilers.resources import eventpolicy as build
from control.reconcilers.snapshot import Snapshot
from core import oidc
from core.contract import (
    Contract,
    Egress,
    EgressAuth,
    IngressAuth,
    IngressPolicy,
    OidcConfig,
    Reference,
    Resource,
    TokenMatcher,
)


def test_knative_names() -> None:
    assert oidc.audience("eventing.knative.dev", "Broker", "ns", "Default") == "eventing.knative.dev/broker/ns/default"
    assert oidc.identity("eventing.knative.dev", "Trigger", "ns", "t1") == \
        "system:serviceaccount:ns:t1-oidc-eventing.knative.dev-trigger"
    # kmeta.ChildName: past 63 characters, with a suffix this long, the name is the md5 of the whole.
    long = oidc.service_account_name("sources.knative.dev", "PingSource", "p" * 30)
    assert re.fullmatch("[0-9a-f]{32}", long)
    short = oidc.service_account_name("sources.knative.dev", "PingSource", "p")
    assert short == "p-oidc-sources.knative.dev-pingsource"
    assert oidc.namespace_of("system:serviceaccount:ns:x") == "ns"
    assert oidc.namespace_of("alice") is None


@pytest.fixture(scope="module")
def issuer() -> oidc.Issuer:
    return oidc.Issuer(oidc.SigningKey.generate(), "http://issuer")


@pytest.mark.parametrize(("case", "reason"), [
    ("other-audience", "not for audience"), ("other-issuer", "not issued by"), ("expired", "expired"),
    ("other-key", "does not publish"), ("garbage", "not a JWT"),
])
def test_verifier_refusals(issuer: oidc.Issuer, case: str, reason: str) -> None:
    verifier = oidc.Verifier(issuer.url, issuer.key.jwks())
    token = {
        "other-audience": lambda: issuer.mint("s", "b")[0],
        "other-issuer": lambda: oidc.Issuer(issuer.key, "http://elsewhere").mint("s", "a")[0],
        "expired": lambda: oidc.Issuer(issuer.key, issuer.url, clock=lambda: 1000.0).mint("s", "a", 60)[0],
        "other-key": lambda: oidc.Issuer(oidc.SigningKey.generate(), issuer.url).mint("s", "a")[0],
        "garbage": lambda: "x.y",
    }[case]()
    with pytest.raises(oidc.TokenRejected, match=reason):
        verifier.verify(token, "a")


def test_a_verified_token_is_cached_until_it_expires(issuer: oidc.Issuer) -> None:
    token, expires = issuer.mint("s", "a", 60)
    now = [expires - 30]
    verifier = oidc.Verifier(issuer.url, issuer.key.jwks(), clock=lambda: now[0])
    checked: list[str] = []
    real = verifier._verify

    def counting(token: str, audience: str) -> oidc.Claims:
        checked.append(audience)
        return real(token, audience)

    verifier._verify = counting  # type: ignore[method-assign]
    assert verifier.verify(token, "a").subject == "s"
    assert verifier.verify(token, "a").subject == "s"
    assert checked == ["a"]  # the signature was checked once
    with pytest.raises(oidc.TokenRejected):
        verifier.verify(token, "b")  # another audience is checked, not taken from the cache
    now[0] = expires + 1
    verifier.verify(token, "a")  # past its exp the cached entry is dropped and the token checked again
    assert checked == ["a", "b", "a"]


@pytest.mark.parametrize(("header", "code"), [(None, "invalid_request"), ("Basic abc", "invalid_request"),
                                              ("Bearer ", "invalid_request")])
def test_bearer_header(header: str | None, code: str) -> None:
    with pytest.raises(oidc.TokenRejected) as raised:
        oidc.bearer(header)
    assert raised.value.code == code


async def test_cached_tokens_are_reused_until_near_expiry() -> None:
    now = [0.0]
    made: list[tuple[str, str]] = []

    def mint(sub: str, aud: str) -> tuple[str, float]:
        made.append((sub, aud))
        return f"t{len(made)}", now[0] + 3600

    tokens = oidc.CachedTokens(mint, clock=lambda: now[0])
    assert [await tokens.token("s", "a"), await tokens.token("s", "a"), await tokens.token("s", "b")] == \
        ["t1", "t1", "t2"]
    now[0] = 3600 - oidc.REFRESH_MARGIN_S + 1
    assert await tokens.token("s", "a") == "t3"


def test_contract_round_trip_of_oidc_fields() -> None:
    ref = Reference("u", "ns", "b", "Broker")
    egress = Egress("e", Reference("t", "ns", "t1", "Trigger"), "g", "http://sink",
                    auth=EgressAuth("system:serviceaccount:ns:x", "x", destination_audience="sink"))
    resource = Resource("u", ref, "memory", "topic", "/ns/b", (egress,),
                        auth=IngressAuth("aud", (IngressPolicy((TokenMatcher("a"), TokenMatcher("b:", prefix=True)),
                                                               ({"exact": {"type": "t"}},)),)))
    contract = Contract(3, (resource,), oidc=OidcConfig("http://issuer", {"keys": []}))
    again = Contract.loads(contract.dumps())
    assert again == contract
    ingress = contract.to_json()["resources"][0]["ingress"]
    assert ingress["eventPolicies"][0]["tokenMatchers"] == [{"exact": {"attributes": {"sub": "a"}}},
                                                            {"prefix": {"attributes": {"sub": "b:"}}}]
    assert "oidc" not in Contract(1).to_json()  # off: the contract is as before


def _obj(kind: str, name: str, namespace: str = "ns", **extra: Any) -> dict[str, Any]:
    api = {"Broker": "eventing.knative.dev/v1", "EventPolicy": "eventing.knative.dev/v1alpha1",
           "Trigger": "eventing.knative.dev/v1"}.get(kind, "messaging.knative.dev/v1")
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace, "uid": name,
                                                          "generation": 1, **extra.pop("meta", {})}, **extra}


BROKER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker"}


@pytest.mark.parametrize(("to", "target", "applies"), [
    (None, _obj("Broker", "b"), True),
    ([{"ref": {**BROKER, "name": "b"}}], _obj("Broker", "b"), True),
    ([{"ref": {**BROKER, "name": "B"}}], _obj("Broker", "b"), True),  # Knative compares names without case
    ([{"ref": {**BROKER, "name": "other"}}], _obj("Broker", "b"), False),
    ([{"ref": {**BROKER, "name": "b"}}], _obj("InMemoryChannel", "b"), False),
    ([{"selector": {**BROKER, "matchLabels": {"team": "a"}}}], _obj("Broker", "b", meta={"labels": {"team": "a"}}),
     True),
    ([{"selector": {**BROKER, "matchLabels": {"team": "a"}}}], _obj("Broker", "b"), False),
    (None, _obj("Broker", "b", namespace="elsewhere"), False),
])
def test_which_policies_apply(to: list[dict[str, Any]] | None, target: dict[str, Any], applies: bool) -> None:
    policy = _obj("EventPolicy", "p", spec={"to": to} if to is not None else {})
    assert build.applies(policy, target) is applies


@pytest.mark.parametrize(("mode", "matchers"), [
    ("allow-same-namespace", (TokenMatcher("system:serviceaccount:ns:", prefix=True),)),
    ("allow-all", (TokenMatcher("", prefix=True),)),
    ("deny-all", None),
])
def test_default_modes_compile_into_policies(mode: str, matchers: tuple[TokenMatcher, ...] | None) -> None:
    broker = _obj("Broker", "b")
    auth = build.ingress_auth(broker, Snapshot.of([broker]), build.Authz(True, mode))
    assert auth is not None and auth.audience == "eventing.knative.dev/broker/ns/b"
    assert auth.policies == ((IngressPolicy(matchers),) if matchers else ())
    assert build.ingress_auth(broker, Snapshot.of([broker]), build.Authz(False, mode)) is None


def test_ready_policies_compile_with_wildcards_and_filters() -> None:
    broker = _obj("Broker", "b")
    trigger = _obj("Trigger", "t")
    policy = _obj("EventPolicy", "p", spec={"from": [{"sub": "system:serviceaccount:team:*"},
                                                     {"ref": {"apiVersion": "eventing.knative.dev/v1",
                                                              "kind": "Trigger", "name": "t"}}],
                                            "filters": [{"prefix": {"type": "dev."}}]})
    auth = build.ingress_auth(broker, Snapshot.of([broker, trigger, policy]), build.Authz(True))
    assert auth is not None
    assert auth.policies == (IngressPolicy((TokenMatcher("system:serviceaccount:team:", prefix=True),
                                            TokenMatcher(oidc.identity("eventing.knative.dev", "Trigger", "ns", "t"))),
                                           ({"prefix": {"type": "dev."}},)),)


def test_decorate_is_idempotent() -> None:
    broker = _obj("Broker", "b", status={"address": {"url": "http://x/ns/b"},
                                         "conditions": [{"type": "Ready", "status": "True",
                                                         "lastTransitionTime": "t0"}]})
    snapshot = Snapshot.of([broker])
    once = build.decorate(broker, broker["status"], snapshot, build.Authz(True), now="t1")
    broker["status"] = once
    assert build.decorate(broker, once, snapshot, build.Authz(True), now="t2") == once
    assert once["address"]["audience"] == "eventing.knative.dev/broker/ns/b"
