"""A ContainerSource through the control API: it makes its Deployment and SinkBinding (owned, Knative's
names and labels), reads the binding's sink into its status, and takes both children with it when it
is deleted. The processes the Deployment runs are the e2e tests' (tests/e2e/test_container_source.py)."""

from __future__ import annotations

from typing import Any

from tests.support.stack import Stack, eventually

SOURCE = """
apiVersion: sources.knative.dev/v1beta1
kind: ContainerSource
metadata: {name: producer, namespace: team-a, labels: {team: a}}
spec:
  template:
    metadata: {labels: {app: producer}}
    spec:
      containers:
      - name: producer
        image: example.com/producer:1
        command: [sh, -c, "sleep 30"]
  sink: {uri: "http://sink.example/events"}
  ceOverrides: {extensions: {hello: world}}
"""


async def _try_get(stack: Stack, kind: str, name: str) -> dict[str, Any] | None:
    async with stack.session.get(f"{stack.api}/api/v1/resources/{kind}/team-a/{name}") as response:
        if response.status == 404:
            return None
        obj: dict[str, Any] = await response.json()
        return obj


async def test_children_status_and_deletion(stack: Stack) -> None:
    await stack.apply(SOURCE)
    source = await stack.get("containersource", "team-a", "producer")
    binding = await stack.get("sinkbinding", "team-a", "producer-sinkbinding")
    deployment = await stack.get("deployment", "team-a", "producer-deployment")
    uid = source["metadata"]["uid"]
    for child in (binding, deployment):
        [owner] = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "ContainerSource", "producer", uid, True)
    assert binding["spec"]["subject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team-a",
                                          "name": "producer-deployment"}
    assert binding["spec"]["ceOverrides"] == {"extensions": {"hello": "world"}}
    assert binding["status"]["sinkUri"] == "http://sink.example/events"
    assert deployment["spec"]["template"]["metadata"]["labels"] == {
        "app": "producer", "sources.knative.dev/source": "container-source-controller",
        "sources.knative.dev/containerSource": "producer"}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "-c", "sleep 30"]
    assert source["status"]["sinkUri"] == "http://sink.example/events"
    conditions = {c["type"]: c["status"] for c in source["status"]["conditions"]}
    assert conditions["SinkBindingReady"] == "True"

    # A change to the source's sink reaches its binding.
    await stack.apply(SOURCE.replace("http://sink.example/events", "http://other.example/"))

    async def moved() -> bool:
        source = await stack.get("containersource", "team-a", "producer")
        return bool(source["status"].get("sinkUri") == "http://other.example/")
    await eventually(moved)

    async def repodded() -> bool:
        async with stack.session.get(f"{stack.api}/api/v1/resources/pods?namespace=team-a") as response:
            pods = [p for p in (await response.json())["items"] if not p["metadata"].get("deletionTimestamp")]
        envs = [{e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]} for p in pods]
        return [env.get("K_SINK") for env in envs] == ["http://other.example/"]
    await eventually(repodded)

    await stack.delete("containersource", "team-a", "producer")

    async def gone() -> bool:
        return (await _try_get(stack, "sinkbinding", "producer-sinkbinding") is None
                and await _try_get(stack, "deployment", "producer-deployment") is None)
    await eventually(gone)


async def test_a_child_name_already_taken_is_left_alone_and_said(stack: Stack) -> None:
    await stack.apply("""
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {name: producer-sinkbinding, namespace: team-a}
spec:
  subject: {apiVersion: apps/v1, kind: Deployment, name: someone-else}
  sink: {uri: "http://mine.example/"}
""")
    await stack.apply(SOURCE)
    source = await stack.get("containersource", "team-a", "producer")
    ready = next(c for c in source["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SinkBindingNotOwned")
    theirs = await stack.get("sinkbinding", "team-a", "producer-sinkbinding")
    assert theirs["spec"]["sink"] == {"uri": "http://mine.example/"}
    assert "ownerReferences" not in theirs["metadata"]
