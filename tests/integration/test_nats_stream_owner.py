"""Control alone shapes a NATS stream: a Trigger starting its consumer never resets the Broker's limits.

Before, the dispatcher called ensure_topic with an empty config when a Trigger started, which put
max_age back to 0 (forever) and max_bytes to -1 until control's next resync wrote the ConfigMap's
values back: the stream's limits flip-flopped.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import nats
import pytest

from tests.support.receiver import Receiver
from tests.support.stack import event, running_stack

pytestmark = pytest.mark.nats


async def test_a_trigger_keeps_the_stream_limits_of_its_brokers_configmap(
    tmp_path: Path, nats_url: str, receiver: Receiver
) -> None:
    unique = uuid.uuid4().hex[:8]
    async with running_stack(tmp_path, backend="nats", nats_url=nats_url, resync_seconds=60.0,
                             topic_template=f"owned{unique}-{{namespace}}-{{name}}") as stack:
        await stack.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: stream-config, namespace: ns1}}
data: {{max.bytes: "1048576", max.age.seconds: "3600"}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: tuned, namespace: ns1, annotations: {{eventing.knative.dev/broker.class: NatsJetStreamBroker}}}}
spec:
  config: {{apiVersion: v1, kind: ConfigMap, name: stream-config}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: reader, namespace: ns1}}
spec: {{broker: tuned, subscriber: {{uri: "{receiver.url}"}}}}
""")
        # The Trigger is consuming: one event through proves its consumer started.
        assert await stack.send("/ns1/tuned", event("e1")) == 202
        await receiver.wait_for(1)
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().stream_info(f"owned{unique}-ns1-tuned")
        finally:
            await nc.close()
    assert info.config.max_age == 3600
    assert info.config.max_bytes == 1048576
