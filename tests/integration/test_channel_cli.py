"""Channels and Subscriptions through the `nerve` CLI, with Knative's YAML as Knative's docs write it:
apply, printer columns, -o yaml|json, describe, and what a bad manifest is told."""

from __future__ import annotations

import json

import yaml

from tests.integration.test_cli import nerve
from tests.support.receiver import Receiver
from tests.support.stack import Stack

# From Knative's docs (eventing/channels/create-default-channel, subscriptions), subscriber made local.
CHANNEL = """
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata:
  name: my-channel
  namespace: default
"""


def subscription_yaml(url: str) -> str:
    return f"""
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: my-subscription
  namespace: default
spec:
  channel:
    apiVersion: messaging.knative.dev/v1
    kind: Channel
    name: my-channel
  subscriber:
    uri: {url}
"""


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


async def test_get_channels_and_subscriptions_with_knatives_columns(stack: Stack, receiver: Receiver) -> None:
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=CHANNEL + "---" + subscription_yaml(receiver.url))
    assert code == 0, err
    assert out.splitlines() == ["channel.messaging.knative.dev/my-channel created",
                                "subscription.messaging.knative.dev/my-subscription created"]
    url = f"{stack.ingress}/channels/default/my-channel"
    for spelling in ("channels", "ch", "channel.messaging.knative.dev"):
        code, out, err = await nerve(stack, "get", spelling)
        assert code == 0, err
        [header, row] = _rows(out)
        assert header == ["NAME", "URL", "AGE", "READY", "REASON"]
        assert (row[0], row[1], row[3]) == ("my-channel", url, "True")
    for spelling in ("inmemorychannels", "imc"):
        [header, row] = _rows((await nerve(stack, "get", spelling))[1])
        assert header == ["NAME", "URL", "AGE", "READY", "REASON"]
        assert (row[0], row[1], row[3]) == ("my-channel", url, "True")
    for spelling in ("subscriptions", "sub"):
        [header, row] = _rows((await nerve(stack, "get", spelling))[1])
        assert header == ["NAME", "AGE", "READY", "REASON"]
        assert (row[0], row[2]) == ("my-subscription", "True")
    for spelling in ("kafkachannels", "kc", "natsjetstreamchannels"):
        code, out, err = await nerve(stack, "get", spelling)
        assert (code, out) == (0, ""), err
        assert "No resources found in default namespace." in err
    code, out, _ = await nerve(stack, "get", "channel", "my-channel", "-o", "json")
    obj = json.loads(out)
    assert obj["spec"]["channelTemplate"] == {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}
    assert obj["status"]["address"]["url"] == url
    code, out, _ = await nerve(stack, "get", "sub", "my-subscription", "-o", "yaml")
    assert yaml.safe_load(out)["status"]["physicalSubscription"]["subscriberUri"] == receiver.url
    code, out, _ = await nerve(stack, "describe", "channel", "my-channel")
    assert code == 0
    assert f"Address:      {url}" in out
    conditions = out[out.index("Conditions:"):].splitlines()
    assert {line.split()[0] for line in conditions[2:]} >= {"BackingChannelReady", "Addressable", "Ready"}
    code, out, _ = await nerve(stack, "delete", "sub", "my-subscription")
    assert (code, out.strip()) == (0, 'sub "my-subscription" deleted')


async def test_bad_channel_and_subscription_manifests_are_refused_naming_the_field(stack: Stack) -> None:
    no_subscriber = """
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s1}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: my-channel}
"""
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=no_subscriber)
    assert code == 2
    assert "spec.subscriber: required: the Subscription must reference a subscriber" in err
    no_channel = """
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s2}
spec:
  subscriber: {uri: "http://example.com/"}
"""
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=no_channel)
    assert code == 2
    assert "spec.channel: required: the Subscription must reference a channel" in err
    bad_template = """
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata: {name: c1}
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1
    kind: RabbitChannel
"""
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=bad_template)
    assert code == 2
    assert "spec.channelTemplate.kind: 'RabbitChannel' is not a channel kind Nerve runs" in err
    assert "InMemoryChannel (messaging.knative.dev/v1)" in err
    code, out, err = await nerve(stack, "get", "channels")
    assert out == ""  # nothing was stored
