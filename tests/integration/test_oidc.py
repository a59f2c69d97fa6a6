"""authentication-oidc and EventPolicy through the real ingress, control API and dispatcher (embedded).

Producers get tokens from control's API (what `nerve token` calls); the expired and forged tokens are
made with the state dir's key and another key, as a stale or hostile producer would hold them.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core import oidc
from tests.support.manifests import broker, channel, subscription, trigger
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event, eventually, running_stack

BROKER_AUDIENCE = "eventing.knative.dev/broker/ns1/default"
CHANNEL_AUDIENCE = "messaging.knative.dev/inmemorychannel/ns1/ch"
ALLOWED = "system:serviceaccount:ns1:allowed"
OTHER = "system:serviceaccount:ns1:someone-else"


def features(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config-features",
                                                                  "namespace": "knative-eventing"},
            "data": {"authentication-oidc": "enabled", **data}}


def policy(name: str, *, to: list[dict[str, Any]] | None = None, senders: list[dict[str, Any]] | None = None,
           filters: list[dict[str, Any]] | None = None, namespace: str = "ns1") -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if to is not None:
        spec["to"] = to
    if senders is not None:
        spec["from"] = senders
    if filters is not None:
        spec["filters"] = filters
    return {"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "EventPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        await s.apply(features())
        yield s


async def mint(stack: Stack, audience: str, subject: str | None = None, expires: int = 600) -> str:
    body: dict[str, Any] = {"audience": audience, "expiresSeconds": expires}
    if subject is not None:
        body["subject"] = subject
    async with stack.session.post(f"{stack.api}/api/v1/tokens", json=body) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["token"]
        return token


def expired(stack: Stack, audience: str, subject: str) -> str:
    """A token Nerve's own key signed an hour ago, for ten minutes."""
    key = oidc.SigningKey.load_or_create(stack.nerve.settings.state_dir)
    assert stack.nerve.issuer is not None
    past = oidc.Issuer(key, stack.nerve.issuer.url, clock=lambda: oidc.time.time() - 3600)
    return past.mint(subject, audience, 600)[0]


def forged(stack: Stack, audience: str, subject: str) -> str:
    """Right claims and key id, signed with a key that is not Nerve's."""
    real = oidc.SigningKey.load_or_create(stack.nerve.settings.state_dir)
    other = oidc.SigningKey.generate()
    other.kid = real.kid
    assert stack.nerve.issuer is not None
    return oidc.Issuer(other, stack.nerve.issuer.url).mint(subject, audience)[0]


async def post(stack: Stack, path: str, token: str | None, type_: str = "dev.ok") -> tuple[int, dict[str, Any], str]:
    from core.events import to_binary

    headers, body = to_binary(event("e1", type_=type_))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    # A session without the control token: a producer's own request.
    async with aiohttp.ClientSession() as producer, producer.post(f"{stack.ingress}{path}", data=body,
                                                                  headers=headers) as response:
        text = await response.text()
        payload = await response.json() if response.content_type == "application/json" else {}
        return response.status, payload, response.headers.get("WWW-Authenticate", "") or text


async def test_addresses_have_knative_audiences(stack: Stack) -> None:
    await stack.apply(broker(), channel("ch", kind="InMemoryChannel"), channel("generic"))
    b = await stack.get("broker", "ns1", "default")
    assert b["status"]["address"]["audience"] == BROKER_AUDIENCE
    imc = await stack.get("inmemorychannel", "ns1", "ch")
    assert imc["status"]["address"]["audience"] == CHANNEL_AUDIENCE
    generic = await stack.get("channel", "ns1", "generic")  # its address is its backing channel's
    assert generic["status"]["address"]["audience"] == "messaging.knative.dev/inmemorychannel/ns1/generic"
    conditions = {c["type"]: (c["status"], c.get("reason")) for c in b["status"]["conditions"]}
    assert conditions["EventPoliciesReady"] == ("True", "DefaultAuthorizationMode")
    await stack.apply({"apiVersion": "flows.knative.dev/v1", "kind": "Sequence",
                       "metadata": {"name": "seq", "namespace": "ns1"},
                       "spec": {"steps": [{"uri": "http://127.0.0.1:9/step"}]}})

    async def sequence_audience() -> bool:  # its input channel's (Knative's Sequence oidc feature)
        seq = await stack.get("sequence", "ns1", "seq")
        return bool((seq.get("status") or {}).get("address", {}).get("audience") ==
                    "messaging.knative.dev/inmemorychannel/ns1/seq-kn-sequence-0")

    await eventually(sequence_audience)


@pytest.mark.parametrize(("path", "audience", "ref"), [
    ("/ns1/default", BROKER_AUDIENCE, {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}),
    ("/channels/ns1/ch", CHANNEL_AUDIENCE,
     {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "ch"}),
])
async def test_sender_matrix(stack: Stack, path: str, audience: str, ref: dict[str, Any]) -> None:
    await stack.apply(broker(), channel("ch", kind="InMemoryChannel"),
                      policy("only-allowed", to=[{"ref": ref}], senders=[{"sub": ALLOWED}],
                             filters=[{"exact": {"type": "dev.ok"}}]))
    target = await stack.get(ref["kind"].lower(), "ns1", ref["name"])
    assert target["status"]["policies"] == [{"name": "only-allowed", "apiVersion": "eventing.knative.dev/v1alpha1"}]

    status, body, challenge = await post(stack, path, None)
    assert (status, body["error"]) == (401, "TokenRefused") and "no token" in body["reason"]
    assert challenge.startswith('Bearer realm="nerve", error="invalid_request"')
    status, body, challenge = await post(stack, path, forged(stack, audience, ALLOWED))
    assert status == 401 and "signature" in body["reason"] and 'error="invalid_token"' in challenge
    status, body, _ = await post(stack, path, await mint(stack, "eventing.knative.dev/broker/ns1/other", ALLOWED))
    assert status == 401 and "audience" in body["reason"]
    status, body, _ = await post(stack, path, expired(stack, audience, ALLOWED))
    assert status == 401 and "expired" in body["reason"]
    status, body, _ = await post(stack, path, "not-a-jwt")
    assert status == 401 and "not a JWT" in body["reason"]

    allowed = await mint(stack, audience, ALLOWED)
    assert (await post(stack, path, allowed))[0] == 202
    status, body, _ = await post(stack, path, await mint(stack, audience, OTHER))
    assert (status, body["error"]) == (403, "NotAllowed") and OTHER in body["reason"]
    status, body, _ = await post(stack, path, allowed, type_="dev.other")
    assert status == 403 and "does not match the filters" in body["reason"]


async def test_wildcard_subject_and_a_policy_on_everything_in_the_namespace(stack: Stack) -> None:
    await stack.apply(broker(), policy("team", senders=[{"sub": "system:serviceaccount:team:*"}]))
    assert (await post(stack, "/ns1/default", await mint(stack, BROKER_AUDIENCE,
                                                          "system:serviceaccount:team:any")))[0] == 202
    # The policy replaces the default mode: the Broker's own namespace is no longer let in by it.
    assert (await post(stack, "/ns1/default", await mint(stack, BROKER_AUDIENCE, ALLOWED)))[0] == 403


@pytest.mark.parametrize(("mode", "same", "other"), [
    ("allow-same-namespace", 202, 403), ("allow-all", 202, 202), ("deny-all", 403, 403)])
async def test_default_authorization_modes(stack: Stack, mode: str, same: int, other: int) -> None:
    await stack.apply(features(**{"default-authorization-mode": mode}), broker())
    assert (await post(stack, "/ns1/default", await mint(stack, BROKER_AUDIENCE, ALLOWED)))[0] == same
    assert (await post(stack, "/ns1/default", await mint(stack, BROKER_AUDIENCE,
                                                          "system:serviceaccount:ns2:x")))[0] == other
    b = await stack.get("broker", "ns1", "default")
    ready = next(c for c in b["status"]["conditions"] if c["type"] == "EventPoliciesReady")
    assert mode in ready["message"]


async def test_a_default_token_is_for_the_audiences_namespace(stack: Stack) -> None:
    await stack.apply(broker())
    token = await mint(stack, BROKER_AUDIENCE)  # no subject: system:serviceaccount:ns1:default
    assert (await post(stack, "/ns1/default", token))[0] == 202


async def test_oidc_off_takes_events_without_a_token(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(broker())
        b = await stack.get("broker", "ns1", "default")
        assert "audience" not in b["status"]["address"]
        assert (await post(stack, "/ns1/default", None))[0] == 202


async def test_policy_status_and_an_unresolvable_from_ref(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(broker(), trigger("t1", receiver.url),
                      policy("from-trigger", senders=[{"ref": {"apiVersion": "eventing.knative.dev/v1",
                                                               "kind": "Trigger", "name": "t1"}}]),
                      policy("from-nobody", senders=[{"ref": {"apiVersion": "eventing.knative.dev/v1",
                                                              "kind": "Trigger", "name": "missing"}}]))
    t1 = await stack.get("trigger", "ns1", "t1")  # Knative's status.auth: the identity its tokens carry
    assert t1["status"]["auth"] == {"serviceAccountName": "t1-oidc-eventing.knative.dev-trigger"}
    identity = next(c for c in t1["status"]["conditions"] if c["type"] == "OIDCIdentityCreated")
    assert identity["status"] == "True" and "reason" not in identity
    good = await stack.get("eventpolicy", "ns1", "from-trigger")
    assert good["status"]["from"] == ["system:serviceaccount:ns1:t1-oidc-eventing.knative.dev-trigger"]
    assert next(c for c in good["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    bad = await stack.get("eventpolicy", "ns1", "from-nobody")
    ready = next(c for c in bad["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SubjectsNotResolved")
    assert "Trigger ns1/missing does not exist" in ready["message"]
    b = await stack.get("broker", "ns1", "default")
    assert b["status"]["policies"] == [{"name": "from-trigger", "apiVersion": "eventing.knative.dev/v1alpha1"}]
    not_ready = next(c for c in b["status"]["conditions"] if c["type"] == "EventPoliciesReady")
    assert (not_ready["status"], not_ready["reason"]) == ("False", "EventPoliciesNotReady")
    assert "from-nobody" in not_ready["message"]
    ready = next(c for c in b["status"]["conditions"] if c["type"] == "Ready")  # Knative: NotReady with it
    assert (ready["status"], ready["reason"]) == ("False", "EventPoliciesNotReady")


async def test_an_event_policy_with_a_bad_field_is_refused(stack: Stack) -> None:
    bad = policy("bad", senders=[{"sub": "system:*:x"}], to=[{"ref": {"kind": "Broker", "name": "default"}}])
    async with stack.session.post(f"{stack.api}/api/v1/apply", json={"items": [bad]}) as response:
        body = await response.json()
    assert response.status == 400
    fields = {d["field"]: d["reason"] for d in body["details"]}
    assert "'*' is only allowed as suffix" in fields["spec.from[0].sub"]
    assert fields["spec.to[0].ref.apiVersion"] == "required"


class VerifyingSubscriber(Receiver):
    """A subscriber that trusts Nerve's issuer as any OIDC relying party would: discovery, then the JWKS,
    then each request's token checked for its own audience (401 otherwise)."""

    def __init__(self, audience: str) -> None:
        super().__init__(self._check)
        self.audience = audience
        self.subjects: list[str] = []
        self.verifier: oidc.Verifier | None = None

    async def trust(self, control: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{control}{oidc.DISCOVERY_PATH}") as response:
                discovery = await response.json()
            async with session.get(discovery["jwks_uri"]) as response:
                jwks = await response.json()
        self.verifier = oidc.Verifier(discovery["issuer"], jwks)

    def _check(self, index: int, _: Any) -> Answer:
        assert self.verifier is not None
        header = self.received[index].headers.get("Authorization")
        try:
            claims = self.verifier.verify(oidc.bearer(header), self.audience)
        except oidc.TokenRejected as exc:
            return Answer(401, body=exc.reason.encode())
        self.subjects.append(claims.subject)
        return Answer(202)


async def test_dispatcher_sends_tokens_for_the_triggers_identity(stack: Stack) -> None:
    sink = VerifyingSubscriber("my-sink")
    await sink.start()
    try:
        await sink.trust(stack.api)
        await stack.apply(broker(), trigger("t1", sink.url, subscriber={"uri": sink.url, "audience": "my-sink"}))
        assert (await post(stack, "/ns1/default", await mint(stack, BROKER_AUDIENCE, ALLOWED)))[0] == 202
        await eventually(lambda: len(sink.subjects) == 1)
        assert sink.subjects == ["system:serviceaccount:ns1:t1-oidc-eventing.knative.dev-trigger"]
    finally:
        await sink.stop()


async def test_a_trigger_to_a_channel_authenticates_with_the_channels_audience(stack: Stack) -> None:
    """Broker -> Trigger -> (ref) InMemoryChannel -> Subscription -> subscriber: every hop verified."""
    sink = VerifyingSubscriber("final")
    await sink.start()
    try:
        await sink.trust(stack.api)
        ref = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "ch"}
        await stack.apply(
            broker(), channel("ch", kind="InMemoryChannel"),
            trigger("to-channel", "", subscriber={"ref": ref}),
            subscription("s1", {"uri": sink.url, "audience": "final"}, channel="ch",
                         channel_kind="InMemoryChannel"),
            # Only the Trigger may send to the channel: the dispatcher's token must carry its identity.
            policy("channel-from-trigger", to=[{"ref": ref}],
                   senders=[{"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                                     "name": "to-channel"}}]))

        async def trigger_ready() -> bool:  # the channel gets its address in the same pass, after Triggers
            t = await stack.get("trigger", "ns1", "to-channel")
            return any(c["type"] == "Ready" and c["status"] == "True" for c in t["status"]["conditions"])

        await eventually(trigger_ready)
        assert (await post(stack, "/ns1/default", await mint(stack, BROKER_AUDIENCE, ALLOWED)))[0] == 202
        await eventually(lambda: len(sink.subjects) == 1)
        assert sink.subjects == ["system:serviceaccount:ns1:s1-oidc-messaging.knative.dev-subscription"]
        # A producer that is not the Trigger is refused by the channel's policy.
        assert (await post(stack, "/channels/ns1/ch", await mint(stack, CHANNEL_AUDIENCE, ALLOWED)))[0] == 403
    finally:
        await sink.stop()


async def test_discovery_and_keys_are_open_and_tokens_need_the_control_token(stack: Stack) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{stack.api}{oidc.DISCOVERY_PATH}") as response:
            assert response.status == 200
            assert (await response.json())["issuer"] == stack.api
        async with anonymous.get(f"{stack.api}{oidc.JWKS_PATH}") as response:
            keys = (await response.json())["keys"]
            assert [k["kty"] for k in keys] == ["RSA"] and "d" not in keys[0]  # never the private part
        async with anonymous.post(f"{stack.api}/api/v1/tokens", json={"audience": BROKER_AUDIENCE}) as response:
            assert response.status == 401
    async with stack.session.post(f"{stack.api}/api/v1/tokens", json={"subject": ALLOWED}) as response:
        body = await response.json()
        assert (response.status, body["field"]) == (400, "audience")
    # The key's public half, not the private one, is what the data plane gets.
    contract = stack.nerve.ingress.auth._verifier
    assert contract is not None and contract.issuer == stack.api
    payload = (await mint(stack, BROKER_AUDIENCE)).split(".")[1]
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b'"iss":"' + stack.api.encode() in claims


async def test_nerve_token_cli(stack: Stack) -> None:
    from tests.integration.test_cli import nerve

    await stack.apply(broker())
    code, out, err = await nerve(stack, "token")
    assert code == 2 and out == ""
    assert "error: --audience is required" in err
    code, _, err = await nerve(stack, "token", "--audience", BROKER_AUDIENCE, "--expires", "48h")
    assert code == 2 and "expiresSeconds must be a whole number of seconds from 1 to 86400" in err
    code, out, err = await nerve(stack, "token", "--audience", BROKER_AUDIENCE, "--subject", ALLOWED,
                                 "--expires", "5m")
    assert code == 0, err
    claims = oidc.Verifier(stack.api, stack.nerve.issuer.key.jwks() if stack.nerve.issuer else {}).verify(
        out.strip(), BROKER_AUDIENCE)
    assert claims.subject == ALLOWED and 290 <= claims.expires - oidc.time.time() <= 300
    assert (await post(stack, "/ns1/default", out.strip()))[0] == 202


async def test_a_ping_source_sends_with_its_identity(stack: Stack) -> None:
    sink = VerifyingSubscriber("ping-sink")
    await sink.start()
    try:
        await sink.trust(stack.api)
        await stack.apply({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
                           "metadata": {"name": "p", "namespace": "ns1"},
                           "spec": {"schedule": "* * * * * *", "data": "{}",
                                    "sink": {"uri": sink.url, "audience": "ping-sink"}}})
        await eventually(lambda: len(sink.subjects) >= 1)
        assert sink.subjects[0] == "system:serviceaccount:ns1:p-oidc-sources.knative.dev-pingsource"
        assert len(sink.received) == len(sink.subjects)  # none came without a valid token
    finally:
        await sink.stop()


async def test_oidc_over_tls_a_trigger_to_another_brokers_https_address(tmp_path: Path) -> None:
    """transport-encryption permissive and OIDC together: a Trigger's ref to a Broker resolves to its https
    address (CACerts verified), and its token is for that Broker's audience."""
    from ingress.settings import IngressSettings

    sink = VerifyingSubscriber("end")
    await sink.start()
    try:
        async with running_stack(tmp_path, transport_encryption="permissive", authentication_oidc="enabled",
                                 ingress=IngressSettings(port=0, https_port=0)) as stack:
            await sink.trust(stack.api)
            back = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "back"}
            await stack.apply(broker("front"), broker("back"), trigger("hop", "", broker="front",
                                                                      subscriber={"ref": back}),
                              trigger("last", sink.url, broker="back", subscriber={"uri": sink.url,
                                                                                    "audience": "end"}))
            b = await stack.get("broker", "ns1", "back")
            https = [a for a in b["status"]["addresses"] if a["url"].startswith("https://")]
            assert https and https[0]["audience"] == "eventing.knative.dev/broker/ns1/back"

            async def hop_ready() -> bool:
                t = await stack.get("trigger", "ns1", "hop")
                return str(t["status"].get("subscriberUri", "")).startswith("https://") and any(
                    c["type"] == "Ready" and c["status"] == "True" for c in t["status"]["conditions"])

            await eventually(hop_ready)
            token = await mint(stack, "eventing.knative.dev/broker/ns1/front", ALLOWED)
            assert (await post(stack, "/ns1/front", token))[0] == 202
            await eventually(lambda: len(sink.subjects) == 1)
            assert sink.subjects == ["system:serviceaccount:ns1:last-oidc-eventing.knative.dev-trigger"]
    finally:
        await sink.stop()
