"""Which channel a Channel that names no channelTemplate gets: Knative's default-ch-webhook ConfigMap
when one is stored (also earlier in the same apply), else --default-channel-kind."""

from __future__ import annotations

from typing import Any

from tests.support.manifests import channel
from tests.support.stack import Stack

DEFAULTS = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: default-ch-webhook
  namespace: knative-eventing
data:
  default-ch-config: |
    clusterDefault:
      apiVersion: messaging.knative.dev/v1
      kind: InMemoryChannel
    namespaceDefaults:
      kafka-team:
        apiVersion: messaging.knative.dev/v1beta1
        kind: KafkaChannel
        spec:
          numPartitions: 3
"""


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


async def test_the_default_ch_webhook_configmap_picks_the_backing_channel(stack: Stack) -> None:
    # The ConfigMap and the Channels in one apply, as `kubectl apply -f dir/` would send them.
    await stack.apply(DEFAULTS, channel("plain"), channel("durable", namespace="kafka-team"))
    plain = await stack.get("channel", "ns1", "plain")
    assert plain["spec"]["channelTemplate"] == {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}
    assert _ready(plain)["status"] == "True"
    durable = await stack.get("channel", "kafka-team", "durable")
    assert durable["spec"]["channelTemplate"]["kind"] == "KafkaChannel"
    backing = await stack.get("kafkachannel", "kafka-team", "durable")
    assert backing["spec"]["numPartitions"] == 3
    # This stack has no Kafka: the channel says so, and is never quietly put on memory instead.
    ready = _ready(durable)
    assert (ready["status"], ready["reason"]) == ("False", "TopicNotReady")
    assert "no Kafka bootstrap servers configured" in ready["message"]


async def test_without_the_configmap_the_setting_decides(stack: Stack) -> None:
    await stack.apply(channel())
    stored = await stack.get("channel", "ns1", "my-channel")
    # The integration stack runs on memory: --default-channel-kind follows --backend.
    assert stored["spec"]["channelTemplate"]["kind"] == "InMemoryChannel"
