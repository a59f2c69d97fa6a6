"""Two channels never share a topic: with a topic template that maps two channels to one name, the one
that has the topic keeps it and the other says why it is not Ready."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.manifests import channel, subscription
from tests.support.receiver import Receiver
from tests.support.stack import event, running_stack


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


async def test_a_channel_whose_topic_is_taken_is_not_ready_and_takes_no_events(
    tmp_path: Path, receiver: Receiver
) -> None:
    # `{namespace}-{name}` is not injective: a/b-c and a-b/c both map to topic a-b-c.
    async with running_stack(tmp_path, channel_topic_template="{namespace}-{name}") as stack:
        imc = "InMemoryChannel"
        await stack.apply(channel("b-c", "a", kind=imc),
                          subscription("sub", receiver.url, namespace="a", channel="b-c", channel_kind=imc))
        await stack.apply(channel("c", "a-b", kind=imc))
        assert _ready(await stack.get("inmemorychannel", "a", "b-c"))["status"] == "True"
        second = _ready(await stack.get("inmemorychannel", "a-b", "c"))
        assert (second["status"], second["reason"]) == ("False", "TopicConflict")
        assert "InMemoryChannel a/b-c's" in second["message"]
        assert await stack.send("/channels/a-b/c", event("wrong")) == 404
        assert await stack.send("/channels/a/b-c", event("right")) == 202
        await receiver.wait_for(1)
        await receiver.settle()
        assert receiver.ids == ["right"]
        # Deleting the one that lost keeps the other's topic.
        await stack.delete("inmemorychannel", "a-b", "c")
        assert await stack.send("/channels/a/b-c", event("still")) == 202
        await receiver.wait_for(2)


async def test_a_channel_never_takes_over_a_channel_it_does_not_own(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(channel("taken", kind="InMemoryChannel"))
        await stack.apply(channel("taken"))
        generic = await stack.get("channel", "ns1", "taken")
        ready = _ready(generic)
        assert (ready["status"], ready["reason"]) == ("False", "BackingChannelNotConfigured")
        assert "exists and is not this Channel's" in ready["message"]
        mine = await stack.get("inmemorychannel", "ns1", "taken")
        assert "ownerReferences" not in mine["metadata"]
        # Deleting the Channel leaves the InMemoryChannel it never owned.
        await stack.delete("channel", "ns1", "taken")
        assert _ready(await stack.get("inmemorychannel", "ns1", "taken"))["status"] == "True"
