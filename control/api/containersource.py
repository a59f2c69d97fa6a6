"""ContainerSource (sources.knative.dev/v1; v1beta1 accepted): a pod template that sends events to a sink.

`ev:pkg/apis/sources/v1/container_*.go`: the Source duck (`sink`, `ceOverrides`) plus `template`, a
PodTemplateSpec with at least one container, each with a `name` and an `image`. Knative runs it as a
Deployment bound to the sink by a SinkBinding (control/reconcilers/resources/containersource.py); the pod
template is Kubernetes' business, so the schema leaves it open, as Nerve's Deployment kind does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import schema, source, workloads
from control.api.meta import mapping
from control.api.schema import OPEN, FieldNotice
from core.errors import FieldError

if TYPE_CHECKING:
    pass

SCHEMA = schema.resource(schema.obj({**source.DUCK, "template": OPEN}))
# The CRD's additionalPrinterColumns, as the seed prints them.
COLUMNS = source.COLUMNS


default_container_source = source.default_source


def validate_template(template: Any, path: str = "spec.template") -> list[FieldError]:
    """Knative's ContainerSourceSpec.Validate (at least one container, each with a name and an image), and
    the pod spec rules of the Deployment it becomes (control/api/workloads.py), each naming its field."""
    if not isinstance(template, dict):
        return [FieldError(path, "required: a pod template with spec.containers")]
    if "metadata" in template and not isinstance(template["metadata"], dict):
        return [FieldError(f"{path}.metadata", "must be an object")]
    labels = mapping(template.get("metadata")).get("labels")
    if labels is not None and (not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
        return [FieldError(f"{path}.metadata.labels", "must be a map of strings to strings")]
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return [FieldError(f"{path}.spec", "required: an object with containers")]
    # A Deployment's pods always restart; the Deployment's defaults are what the check sees.
    return workloads.validate_pod_spec({"restartPolicy": "Always", **spec}, f"{path}.spec",
                                       restart_policies=("Always",))


def notices_container_source(obj: dict[str, Any]) -> list[FieldNotice]:
    template = mapping(mapping(obj.get("spec")).get("template"))
    return workloads.notices_pod_spec(template.get("spec"), "spec.template.spec")


def validate_container_source(obj: dict[str, Any]) -> list[FieldError]:
    namespace, spec = obj["metadata"]["namespace"], obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "required: an object with template and sink")]
    return [*validate_template(spec.get("template")), *source.validate_duck(spec, namespace)]
