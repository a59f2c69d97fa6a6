"""ContainerSource: the manifest's rules, the Deployment and SinkBinding it makes, its status from theirs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from control.api.admission import AdmissionSettings, admit
from control.conditions import cond, with_ready
from control.reconcilers.resources import containersource as build
from core.errors import InvalidResource

# The seed's source (../shared/seeds/003_c7549bdb00436181.txt "container source"), as written.
SEED = {
    "apiVersion": "sources.knative.dev/v1beta1", "kind": "ContainerSource",
    "metadata": {"name": "test-container-source"},
    "spec": {
        "template": {"spec": {"containers": [{
            "image": "docker.io/coldtea214/heartbeats:1.0", "name": "heartbeats", "args": ["--period=1"],
            "env": [{"name": "POD_NAME", "value": "mypod"}, {"name": "POD_NAMESPACE", "value": "event-test"}],
        }]}},
        "sink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}},
    },
}


def _admitted(manifest: dict[str, Any]) -> dict[str, Any]:
    obj = admit(manifest, None, AdmissionSettings()).obj
    obj["metadata"].update(uid="u1", generation=1)
    return obj


def test_the_seed_source_is_admitted_as_v1() -> None:
    admitted = admit(SEED, None, AdmissionSettings())
    assert admitted.obj["apiVersion"] == "sources.knative.dev/v1"
    assert admitted.warnings == []


@pytest.mark.parametrize(("template", "expected"), [
    (None, [("spec.template", "required: a pod template with spec.containers")]),
    ({"spec": {"containers": []}},
     [("spec.template.spec.containers", "required: a non-empty list of containers")]),
    ({"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "N", "value": 1}]}]}},
     [("spec.template.spec.containers[0].env[0].value", "must be a string (quote numbers and booleans)")]),
    ({"spec": {"containers": [{"image": "x"}, {"name": "b"}]}},
     [("spec.template.spec.containers[0].name", "required"), ("spec.template.spec.containers[1].image", "required")]),
])
def test_a_bad_template_is_refused_naming_the_field(template: Any, expected: list[tuple[str, str]]) -> None:
    manifest = copy.deepcopy(SEED)
    if template is None:
        del manifest["spec"]["template"]
    else:
        manifest["spec"]["template"] = template
    with pytest.raises(InvalidResource) as caught:
        admit(manifest, None, AdmissionSettings())
    assert [(e.path, e.reason) for e in caught.value.errors][:len(expected)] == expected


def test_children_are_knative_s_deployment_and_sinkbinding() -> None:
    src = _admitted(SEED)
    deployment = build.deployment(src)
    labels = {"sources.knative.dev/source": "container-source-controller",
              "sources.knative.dev/containerSource": "test-container-source"}
    assert deployment["metadata"] == {"name": "test-container-source-deployment", "namespace": "default",
                                      "labels": labels}
    assert deployment["spec"]["selector"] == {"matchLabels": labels}
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--period=1"]
    assert container["env"] == [{"name": "POD_NAME", "value": "mypod"},
                                {"name": "POD_NAMESPACE", "value": "event-test"},
                                {"name": "NAME", "value": "test-container-source"},
                                {"name": "NAMESPACE", "value": "default"}]
    binding = build.sink_binding(src)
    assert binding["metadata"] == {"name": "test-container-source-sinkbinding", "namespace": "default"}
    assert binding["spec"] == {
        "subject": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default",
                    "name": "test-container-source-deployment"},
        "sink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display", "namespace": "default"}},
    }
    # The binding the source makes passes the SinkBinding kind's own rules.
    assert admit(binding, None, AdmissionSettings()).obj["spec"]["subject"]["name"] == deployment["metadata"]["name"]


def test_long_names_are_shortened_as_kmeta_child_name_does() -> None:
    assert build.child_name("a" * 40, "-deployment") == "a" * 40 + "-deployment"
    long = build.child_name("a" * 60, "-deployment")
    assert len(long) == 63 and long.startswith("a" * 20) and long.endswith("-deployment")
    assert long == build.child_name("a" * 60, "-deployment")


def _status(binding: dict[str, Any] | None, deployment: dict[str, Any] | None) -> dict[str, Any]:
    src = _admitted(SEED)
    return build.status(src, build.Child("b", binding), build.Child("d", deployment))


def test_status_follows_the_binding_and_the_deployment() -> None:
    fresh = _status(None, None)
    assert {c["type"]: c["status"] for c in fresh["conditions"]} == {
        "Ready": "Unknown", "SinkBindingReady": "Unknown", "ReceiveAdapterReady": "Unknown"}
    bound = {"status": {"sinkUri": "http://event-display.default.svc/",
                        "conditions": with_ready([cond("SinkProvided", True)], None)}}
    available = {"status": {"conditions": [cond("Available", True)]}}
    ready = _status(bound, available)
    assert ready["sinkUri"] == "http://event-display.default.svc/"
    assert {c["type"]: c["status"] for c in ready["conditions"]} == {
        "Ready": "True", "SinkBindingReady": "True", "ReceiveAdapterReady": "True"}
    unbound = {"status": {"conditions": with_ready([cond("SinkProvided", False, "NotFound", "no sink")], None)}}
    failing = _status(unbound, {"status": {"conditions": [cond("Available", False, "ImageNotRunnable", "no")]}})
    conditions = {c["type"]: (c["status"], c.get("reason")) for c in failing["conditions"]}
    assert conditions["SinkBindingReady"] == ("False", "NotFound")
    assert conditions["ReceiveAdapterReady"] == ("False", "ImageNotRunnable")
    assert "sinkUri" not in failing
    foreign = build.status(_admitted(SEED), build.Child("b", foreign=True), build.Child("d", available))
    assert next(c for c in foreign["conditions"] if c["type"] == "Ready")["reason"] == "SinkBindingNotOwned"


@pytest.mark.parametrize(("want", "have", "agrees"), [
    ({"a": 1}, {"a": 1, "b": 2}, True),            # what the API server defaulted is no difference
    ({"a": 1}, {"a": 2}, False),
    ({"l": [{"x": 1}]}, {"l": [{"x": 1, "y": 0}]}, True),
    ({"l": [{"x": 1}]}, {"l": [{"x": 1}, {"x": 2}]}, False),  # a list must be as long
    ({"m": {}}, {}, True),
    ({"m": {"k": "v"}}, {}, False),
])
def test_derivative(want: Any, have: Any, agrees: bool) -> None:
    assert build.derivative(want, have) is agrees
