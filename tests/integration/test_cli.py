"""The `nerve` CLI against a running control API: output formats, describe, delete, send.

The real `nerve` executable runs as a subprocess (asynchronously, so the stack in this test's event
loop keeps serving it).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import yaml

from tests.support.receiver import Receiver
from tests.support.stack import Stack

NERVE = str(Path(sys.executable).with_name("nerve"))

MANIFESTS = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: team-a}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: other, namespace: team-b}
"""


async def nerve(stack: Stack, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        NERVE,
        *args,
        env=stack.cli_env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin else None)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_get_in_every_format_and_across_namespaces(stack: Stack) -> None:
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=MANIFESTS)
    assert code == 0, err
    assert out.splitlines() == [
        "broker.eventing.knative.dev/default created",
        "broker.eventing.knative.dev/other created",
    ]
    code, out, _ = await nerve(stack, "get", "brokers", "-A")
    lines = out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "URL", "AGE", "READY", "REASON"]
    assert [line.split()[:2] for line in lines[1:]] == [["team-a", "default"], ["team-b", "other"]]
    code, out, _ = await nerve(stack, "get", "broker", "default", "-n", "team-a", "-o", "json")
    obj = json.loads(out)
    assert obj["status"]["address"]["url"] == f"{stack.ingress}/team-a/default"
    assert obj["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "MTChannelBasedBroker"
    code, out, _ = await nerve(stack, "get", "Brokers.eventing.knative.dev", "-n", "team-b", "-o", "yaml")
    listed = yaml.safe_load(out)
    assert listed["kind"] == "List"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["other"]
    code, out, err = await nerve(stack, "get", "triggers", "-n", "team-a")
    assert code == 0
    assert out == ""
    assert "No resources found in team-a namespace." in err


async def test_describe_shows_conditions_and_delete_removes(stack: Stack, tmp_path: Path) -> None:
    manifest = tmp_path / "broker.yaml"
    manifest.write_text(MANIFESTS)
    assert (await nerve(stack, "apply", "-f", str(manifest)))[0] == 0
    code, out, _ = await nerve(stack, "describe", "broker", "default", "-n", "team-a")
    assert code == 0
    assert "Address:      " + f"{stack.ingress}/team-a/default" in out
    conditions = out[out.index("Conditions:") :].splitlines()
    assert conditions[1].split()[:2] == ["TYPE", "STATUS"]
    assert any(line.split()[:2] == ["Ready", "True"] for line in conditions[2:])
    code, out, _ = await nerve(stack, "delete", "broker", "default", "-n", "team-a")
    assert (code, out.strip()) == (0, 'broker "default" deleted')
    code, _, err = await nerve(stack, "get", "broker", "default", "-n", "team-a")
    assert code == 2
    assert "not found" in err
    code, out, _ = await nerve(stack, "delete", "-f", str(manifest))
    assert code == 2  # the first document is already gone
    code, out, _ = await nerve(stack, "get", "brokers", "-A")
    assert "other" in out


async def test_send_delivers_one_event_and_reports_refusals(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(
        MANIFESTS,
        f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: all, namespace: team-a}}
spec: {{broker: default, subscriber: {{uri: "{receiver.url}"}}}}
""",
    )
    url = f"{stack.ingress}/team-a/default"
    code, out, err = await nerve(
        stack,
        "send",
        url,
        "--type",
        "greeting",
        "--source",
        "cli",
        "--data",
        '{"a": 1}',
        "--id",
        "cli-1",
        "--ext",
        "region=eu",
    )
    assert (code, out.strip()) == (0, "202 cli-1"), err
    [event] = await receiver.wait_for(1)
    assert (event.type, event.source, event.attributes["region"], event.data) == ("greeting", "cli", "eu", b'{"a": 1}')
    code, _, err = await nerve(stack, "send", f"{stack.ingress}/team-a/missing", "--type", "t", "--source", "s")
    assert code == 1
    assert "404" in err and 'brokers.eventing.knative.dev "missing" not found' in err
    code, _, err = await nerve(stack, "send", url, "--type", "t", "--source", "s", "--ext", "Bad=1")
    assert code == 2
    assert "bad" in err.lower() and "lower-case" in err


TYPOS = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: team-a}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t1
  namespace: team-a
  labelz: {app: x}
spec:
  broker: default
  brokr: default
  subscriber: {uri: "http://127.0.0.1:9/"}
  delivery: {retyr: 3}
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: ks, namespace: team-a}
spec:
  bootstrapServers: ["127.0.0.1:1"]
  topics: [orders]
  consumers: 2
  sink: {uri: "http://127.0.0.1:9/"}
"""


async def test_apply_warns_of_unknown_and_unimplemented_fields_and_strict_refuses(stack: Stack) -> None:
    code, out, err = await nerve(stack, "apply", "--validate=strict", "-f", "-", stdin=TYPOS)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        'Warning: KafkaSource/team-a/ks: field "spec.consumers" is accepted but not implemented by Nerve: '
        "2 consumers asked for; Nerve runs one consumer per topic",
        "error: Trigger/team-a/t1: metadata.labelz: unknown field",
        "error: Trigger/team-a/t1: spec.brokr: unknown field",
        "error: Trigger/team-a/t1: spec.delivery.retyr: unknown field",
    ]
    code, out, err = await nerve(stack, "get", "brokers", "-A")
    assert (code, out) == (0, "")
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=TYPOS)
    assert code == 0, err
    assert out.splitlines() == [
        "broker.eventing.knative.dev/default created",
        "trigger.eventing.knative.dev/t1 created",
        "kafkasource.sources.knative.dev/ks created",
    ]
    assert err.splitlines() == [
        'Warning: Trigger/team-a/t1: unknown field "metadata.labelz"',
        'Warning: Trigger/team-a/t1: unknown field "spec.brokr"',
        'Warning: Trigger/team-a/t1: unknown field "spec.delivery.retyr"',
        'Warning: KafkaSource/team-a/ks: field "spec.consumers" is accepted but not implemented by Nerve: '
        "2 consumers asked for; Nerve runs one consumer per topic",
    ]
    code, out, _ = await nerve(stack, "get", "trigger", "t1", "-n", "team-a", "-o", "yaml")
    assert "brokr" not in out and "retyr" not in out
    code, out, err = await nerve(stack, "apply", "--validate", "ignore", "-f", "-", stdin=TYPOS)
    assert code == 0
    assert "unknown field" not in err and "spec.consumers" in err  # ignore quiets typos, never what Nerve skips
    code, _, err = await nerve(stack, "apply", "--validate=lenient", "-f", "-", stdin=TYPOS)
    assert (code, err.strip()) == (2, "error: --validate 'lenient': expected strict, warn or ignore")


async def test_every_problem_is_one_line_even_behind_a_bad_name(stack: Stack) -> None:
    bad = """
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: Bad_Name, namespace: team-a}
spec:
  subscriber: {uri: "/relative"}
---
apiVersion: eventing.knative.dev/v1
kind: Triger
metadata: {name: t2, namespace: team-a}
"""
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=bad)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: Trigger/team-a/Bad_Name: metadata.name: 'Bad_Name' must be lower-case letters, digits, '-' and '.' "
        "(RFC 1123)",
        "error: Trigger/team-a/Bad_Name: spec.broker: required",
        "error: Trigger/team-a/Bad_Name: spec.subscriber.uri: '/relative' must be an absolute URI with a scheme "
        "and host",
        'error: Triger/team-a/t2: kind: unknown kind "Triger"; did you mean "Trigger" (eventing.knative.dev/v1)?',
    ]


async def test_a_yaml_syntax_error_names_the_file_and_line(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    bad = folder / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\ndata: {}\n")
    code, out, err = await nerve(stack, "apply", "-f", str(bad))
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"error: {bad}: line 4: not valid YAML: ")
    (folder / "good.yaml").write_text(MANIFESTS)
    code, _, err = await nerve(stack, "apply", "-f", str(folder))
    assert code == 2
    assert err.startswith(f"error: {bad}: line 4: ")
    code, out, _ = await nerve(stack, "get", "brokers", "-A")
    assert out == ""  # the good file of the directory was not applied either


async def test_a_document_without_metadata_is_named_by_its_file_and_position(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "a.yaml").write_text(MANIFESTS)
    (folder / "b.yaml").write_text(MANIFESTS + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: oops\n")
    code, _, err = await nerve(stack, "apply", "-f", str(folder))
    assert code == 2
    assert err.splitlines() == [f"error: {folder / 'b.yaml'} document 3: metadata: required: an object with at "
                                "least a name"]


async def test_kind_typos_suggest_and_missing_resources_read_as_kubectl_says(stack: Stack) -> None:
    code, _, err = await nerve(stack, "get", "brokrs")
    assert (code, err.strip()) == (2, 'error: unknown kind "brokrs"; did you mean "brokers"?')
    code, _, err = await nerve(stack, "describe", "trigers", "x")
    assert (code, err.strip()) == (2, 'error: unknown kind "trigers"; did you mean "triggers"?')
    for verb in ("get", "describe", "delete"):
        code, _, err = await nerve(stack, verb, "trigger", "x", "-n", "team-a")
        assert (code, err.strip()) == (2, 'error: triggers.eventing.knative.dev "x" not found'), verb
    code, _, err = await nerve(stack, "get", "cm", "x")
    assert (code, err.strip()) == (2, 'error: configmaps "x" not found')
