"""authentication-oidc with control, ingress and dispatcher as separate processes (compose's topology) on a
real Kafka and nats-server: the ingress verifies with the public keys the contract carries (it never sees control's
private key), and the dispatcher asks control's API for its Trigger's tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from core import oidc
from core.events import to_binary
from tests.integration.test_oidc import VerifyingSubscriber, features
from tests.support import manifests
from tests.support.launchers import backend_params
from tests.support.services import Cluster, api_token, http_json
from tests.support.stack import event

AUDIENCE = "eventing.knative.dev/broker/ns1/b"


@pytest.fixture(params=backend_params("kafka", "nats"))
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    backend: str = request.param
    connection = request.getfixturevalue("kafka_bootstrap" if backend == "kafka" else "nats_url")
    c = Cluster(tmp_path, backend, str(connection))
    c.control.start()
    c.control.wait_ready(min_generation=0)
    c.dispatcher.args += ["--control-url", c.api_url, "--control-token", api_token(tmp_path / "state")]
    c.ingress.start()
    c.dispatcher.start()
    yield c
    c.stop()


async def test_separate_services_verify_and_send_tokens(cluster: Cluster, tmp_path: Path) -> None:
    sink = VerifyingSubscriber("the-sink")
    await sink.start()
    try:
        await sink.trust(cluster.api_url)
        # No class: control's --backend gives the Broker its Kafka or NATS class.
        cluster.apply(features(), manifests.broker("b"),
                      manifests.trigger("t", sink.url, broker="b", subscriber={"uri": sink.url,
                                                                               "audience": "the-sink"}))
        contract = (tmp_path / "state" / "contract.json").read_text()
        assert '"jwks"' in contract and '"d":' not in contract  # public keys only
        assert (tmp_path / "state" / oidc.KEY_FILE).exists()  # the private key stays in control's state dir
        status, body = http_json(f"{cluster.api_url}/api/v1/tokens", {"audience": AUDIENCE},
                                 token=api_token(tmp_path / "state"))
        assert status == 200, body
        headers, data = to_binary(event("s1"))
        async with aiohttp.ClientSession() as producer:
            async with producer.post(f"{cluster.ingress_url}/ns1/b", data=data, headers=headers) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            async with producer.post(f"{cluster.ingress_url}/ns1/b", data=data,
                                     headers={**headers, "Authorization": f"Bearer {body['token']}"}) as response:
                assert response.status == 202, await response.text()
        for _ in range(200):
            if sink.subjects:
                break
            await asyncio.sleep(0.05)
        assert sink.subjects == [oidc.identity("eventing.knative.dev", "Trigger", "ns1", "t")]
    finally:
        await sink.stop()
