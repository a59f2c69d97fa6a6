"""Channels and Subscriptions as a user applies them, on every backend: order of creation, immutable
fields, the subscribers Nerve owns, statuses."""

from __future__ import annotations

from typing import Any

from tests.support.manifests import channel, subscription
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event

PATH = "/channels/ns1/my-channel"


def _condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def _apply_status(stack: Stack, *items: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with stack.session.post(f"{stack.api}/api/v1/apply", json={"items": list(items)}) as response:
        return response.status, await response.json()


async def test_a_subscription_made_before_its_channel_becomes_ready_when_the_channel_appears(
    stack: Stack, receiver: Receiver
) -> None:
    await stack.apply(subscription("early", receiver.url))
    early = await stack.get("subscription", "ns1", "early")
    ready = _condition(early)
    assert (ready["status"], ready["reason"]) == ("False", "ChannelReferenceFailed")
    assert "Channel ns1/my-channel does not exist" in ready["message"]
    await stack.apply(channel())
    early = await stack.get("subscription", "ns1", "early")
    assert _condition(early)["status"] == "True", early["status"]
    assert early["status"]["physicalSubscription"] == {"subscriberUri": receiver.url}
    for kind in ("AddedToChannel", "ChannelReady", "ReferencesResolved", "OIDCIdentityCreated"):
        assert _condition(early, kind)["status"] == "True"
    assert await stack.send(PATH, event("after")) == 202
    assert [e.id for e in await receiver.wait_for(1)] == ["after"]


async def test_the_channel_lists_its_subscribers_in_spec_and_status(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(channel(), subscription("sub-1", receiver.url))
    sub = await stack.get("subscription", "ns1", "sub-1")
    ch = await stack.get("channel", "ns1", "my-channel")
    uid = sub["metadata"]["uid"]
    assert ch["status"]["subscribers"] == [{"uid": uid, "observedGeneration": 1, "ready": "True"}]
    assert ch["metadata"]["annotations"]["messaging.knative.dev/subscribable"] == "v1"
    backing_kind = ch["spec"]["channelTemplate"]["kind"]
    assert ch["status"]["channel"]["kind"] == backing_kind
    backing = await stack.get(backing_kind.lower(), "ns1", "my-channel")
    assert backing["spec"]["subscribers"] == [{"name": "sub-1", "uid": uid, "generation": 1,
                                               "subscriberUri": receiver.url}]
    assert backing["metadata"]["ownerReferences"][0]["uid"] == ch["metadata"]["uid"]
    assert backing["status"]["address"]["url"] == ch["status"]["address"]["url"] == f"{stack.ingress}{PATH}"


async def test_spec_channel_is_immutable(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(channel(), channel("other"), subscription("sub", receiver.url))
    status, body = await _apply_status(stack, subscription("sub", receiver.url, channel="other"))
    assert status == 400
    [detail] = body["details"]
    assert detail["field"] == "spec.channel"
    assert "immutable" in detail["reason"]
    # subscriber, reply and delivery may change.
    changed = await stack.apply(subscription("sub", receiver.url, delivery={"retry": 3}))
    assert changed[0]["outcome"] == "configured"


async def test_users_cannot_write_spec_subscribers(stack: Stack, receiver: Receiver) -> None:
    mine = {"uid": "0b4d7c06-0000-0000-0000-000000000000", "subscriberUri": receiver.url}
    status, body = await _apply_status(stack, channel(subscribers=[mine]))
    assert status == 400
    assert [d["field"] for d in body["details"]] == ["spec.subscribers"]
    assert "Subscription" in body["details"][0]["reason"]
    await stack.apply(channel(), subscription("sub", receiver.url))
    backing_kind = (await stack.get("channel", "ns1", "my-channel"))["spec"]["channelTemplate"]["kind"]
    stored = await stack.get(backing_kind.lower(), "ns1", "my-channel")
    # What `nerve get -o yaml | nerve apply -f -` sends back is no change...
    assert (await stack.apply(stored))[0]["outcome"] == "unchanged"
    # ...but a changed list is refused, on the backing channel as on the Channel.
    for target in (stored, await stack.get("channel", "ns1", "my-channel")):
        edited = {**target, "spec": {**target["spec"], "subscribers": [mine]}}
        status, body = await _apply_status(stack, edited)
        assert status == 400, body
        assert [d["field"] for d in body["details"]] == ["spec.subscribers"]
    # The subscriber still gets its events.
    assert await stack.send(PATH, event("still")) == 202
    assert [e.id for e in await receiver.wait_for(1)] == ["still"]


async def test_deleting_a_subscription_stops_its_deliveries_only(stack: Stack, receiver: Receiver) -> None:
    other = Receiver()
    await other.start()
    try:
        await stack.apply(channel(), subscription("gone", other.url), subscription("kept", receiver.url))
        await stack.delete("subscription", "ns1", "gone")
        ch = await stack.get("channel", "ns1", "my-channel")
        kept = await stack.get("subscription", "ns1", "kept")
        assert [s["uid"] for s in ch["status"]["subscribers"]] == [kept["metadata"]["uid"]]
        assert await stack.send(PATH, event("e1")) == 202
        await receiver.wait_for(1)
        await other.settle()
        assert other.received == []
    finally:
        await other.stop()


async def test_a_deleted_channel_stops_taking_events_and_its_subscriptions_say_why(
    stack: Stack, receiver: Receiver
) -> None:
    await stack.apply(channel(), subscription("sub", receiver.url))
    backing_kind = (await stack.get("channel", "ns1", "my-channel"))["spec"]["channelTemplate"]["kind"]
    assert await stack.send(PATH, event("before")) == 202
    await receiver.wait_for(1)
    await stack.delete("channel", "ns1", "my-channel")
    # The backing channel went with it (ownerReferences), its topic cleaned up before `delete` answered.
    async with stack.session.get(f"{stack.api}/api/v1/resources/{backing_kind}/ns1/my-channel") as response:
        assert response.status == 404
    assert await stack.send(PATH, event("after")) == 404
    sub = await stack.get("subscription", "ns1", "sub")
    assert _condition(sub)["reason"] == "ChannelReferenceFailed"
