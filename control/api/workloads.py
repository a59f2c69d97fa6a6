"""Kubernetes workload kinds, for the seeds' consumers and producers: `apps/v1 Deployment`, `batch/v1 Job`,
`batch/v1 CronJob` (the seeds' `batch/v1beta1` accepted), `v1 Pod`, and the kubelet's `v1 Event`.

Embedded Nerve runs them as local processes (docs/sources.md, "Local workloads"): what a Pod's
containers run is decided in control/reconcilers/resources/workloads.py, the processes are the sources
service's (sources/workloads/). Here are only the rules a manifest obeys, checked as the API server checks
them where Nerve acts on a field, and the printer columns `kubectl get` shows.

A pod spec is large and mostly about things a laptop has no use for (volumes, probes, resources, ...);
the schema is open, so those are stored without a warning, and the fields Nerve acts on are validated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api import columns, schema
from control.api.meta import DNS1123_LABEL, mapping
from control.api.schema import OPEN, FieldNotice
from control.api.workloads_cron import schedule_problem, timezone_problem
from core.errors import FieldError

if TYPE_CHECKING:
    from control.api.admission import AdmissionSettings

RESTART_POLICIES = ("Always", "OnFailure", "Never")
# The downward API's fieldRef paths (k8s.io/kubernetes pkg/apis/core/validation:
# validEnvDownwardAPIFieldPathExpressions).
FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
               "status.hostIP", "status.podIP", "status.podIPs")

SCHEMA = schema.resource(OPEN)


# ------------------------------------------------------------------------------------------ pod spec


def _strings(value: Any, path: str) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return [FieldError(path, "must be a list of strings")]
    return []


def _validate_env(env: Any, path: str) -> list[FieldError]:
    if env is None:
        return []
    if not isinstance(env, list):
        return [FieldError(path, "must be a list of {name, value} or {name, valueFrom}")]
    errors: list[FieldError] = []
    for i, var in enumerate(env):
        where = f"{path}[{i}]"
        if not isinstance(var, dict):
            errors.append(FieldError(where, "must be an object with name and value or valueFrom"))
            continue
        if not isinstance(var.get("name"), str) or not var["name"]:
            errors.append(FieldError(f"{where}.name", "required"))
        if "value" in var and not isinstance(var["value"], str):
            errors.append(FieldError(f"{where}.value", "must be a string (quote numbers and booleans)"))
        source = var.get("valueFrom")
        if source is None:
            continue
        if "value" in var:
            errors.append(FieldError(f"{where}.valueFrom", "may not be set together with value"))
        if not isinstance(source, dict):
            errors.append(FieldError(f"{where}.valueFrom", "must be an object"))
            continue
        field_ref = source.get("fieldRef")
        if field_ref is not None:
            field_path = mapping(field_ref).get("fieldPath")
            if not _known_field_path(field_path):
                errors.append(FieldError(f"{where}.valueFrom.fieldRef.fieldPath",
                                         f"{field_path!r}: supported values are {', '.join(FIELD_PATHS)}, "
                                         "metadata.labels['<key>'] and metadata.annotations['<key>']"))
    return errors


def _known_field_path(path: Any) -> bool:
    if not isinstance(path, str):
        return False
    if path in FIELD_PATHS:
        return True
    for prefix in ("metadata.labels['", "metadata.annotations['"):
        if path.startswith(prefix) and path.endswith("']") and len(path) > len(prefix) + 2:
            return True
    return False


def validate_pod_spec(spec: Any, path: str, *,
                      restart_policies: tuple[str, ...] = RESTART_POLICIES) -> list[FieldError]:
    """A PodSpec's containers (name, image, command, args, env) and restartPolicy."""
    if not isinstance(spec, dict):
        return [FieldError(path, "required: an object with containers")]
    errors: list[FieldError] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [FieldError(f"{path}.containers", "required: a non-empty list of containers")]
    names: set[str] = set()
    for i, container in enumerate(containers):
        where = f"{path}.containers[{i}]"
        if not isinstance(container, dict):
            errors.append(FieldError(where, "must be an object with name and image"))
            continue
        name = container.get("name")
        if not isinstance(name, str) or not name:
            errors.append(FieldError(f"{where}.name", "required"))
        elif len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
            errors.append(FieldError(f"{where}.name", f"{name!r} must be an RFC 1123 label"))
        elif name in names:
            errors.append(FieldError(f"{where}.name", f"{name!r}: duplicate container name"))
        else:
            names.add(name)
        image = container.get("image")
        if not isinstance(image, str) or not image.strip():
            errors.append(FieldError(f"{where}.image", "required"))
        errors += _strings(container.get("command"), f"{where}.command")
        errors += _strings(container.get("args"), f"{where}.args")
        errors += _validate_env(container.get("env"), f"{where}.env")
        if container.get("workingDir") is not None and not isinstance(container["workingDir"], str):
            errors.append(FieldError(f"{where}.workingDir", "must be a string"))
    policy = spec.get("restartPolicy")
    if policy not in restart_policies:
        errors.append(FieldError(f"{path}.restartPolicy", f"{policy!r}: supported values are "
                                 f"{', '.join(restart_policies)}"))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool) or grace < 0):
        errors.append(FieldError(f"{path}.terminationGracePeriodSeconds", f"{grace!r} must be an integer >= 0"))
    return errors


def _default_pod_spec(spec: Any, policy: str = "Always") -> None:
    if isinstance(spec, dict):
        spec.setdefault("restartPolicy", policy)
        spec.setdefault("terminationGracePeriodSeconds", 30)


def notices_pod_spec(spec: Any, path: str) -> list[FieldNotice]:
    notices: list[FieldNotice] = []
    for i, container in enumerate(mapping(spec).get("containers") or []):
        for j, var in enumerate(mapping(container).get("env") or []):
            source = mapping(mapping(var).get("valueFrom"))
            for key in ("secretKeyRef", "configMapKeyRef", "resourceFieldRef"):
                if key in source:
                    notices.append(schema.not_implemented(
                        f"{path}.containers[{i}].env[{j}].valueFrom.{key}",
                        "embedded mode sets env from value and fieldRef only; this variable is left unset"))
    if mapping(spec).get("initContainers"):
        notices.append(schema.not_implemented(f"{path}.initContainers", "embedded mode runs only containers"))
    return notices


def _labels_problems(selector: Any, labels: Any, path: str) -> list[FieldError]:
    match = mapping(selector).get("matchLabels")
    if not isinstance(match, dict) or not match:
        return [FieldError(f"{path}.selector", "required: matchLabels naming the template's labels")]
    have = mapping(labels)
    if any(have.get(k) != v for k, v in match.items()):
        return [FieldError(f"{path}.template.metadata.labels", "`selector` does not match template `labels`")]
    return []


def _count(value: Any, path: str, *, minimum: int = 0) -> list[FieldError]:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        return [FieldError(path, f"{value!r} must be an integer >= {minimum}")]
    return []


# ------------------------------------------------------------------------------------------ Pod


def default_pod(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    _default_pod_spec(obj.get("spec"))


def validate_pod(obj: dict[str, Any]) -> list[FieldError]:
    return validate_pod_spec(obj.get("spec"), "spec")


def notices_pod(obj: dict[str, Any]) -> list[FieldNotice]:
    return notices_pod_spec(obj.get("spec"), "spec")


def validate_pod_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    # As the API server: a pod's containers are fixed once it exists (delete and create it again).
    if mapping(old.get("spec")).get("containers") != mapping(new.get("spec")).get("containers"):
        return [FieldError("spec.containers", "a Pod's containers cannot be changed; delete the Pod and "
                                              "create it again")]
    return []


def pod_status_text(obj: dict[str, Any]) -> str:
    """kubectl's STATUS: a waiting or terminated container's reason, else the phase."""
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = mapping(obj.get("status"))
    for cs in status.get("containerStatuses") or []:
        state = mapping(cs.get("state"))
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if "terminated" in state and status.get("phase") not in ("Running",):
            return str(state["terminated"].get("reason") or "Terminated")
    return str(status.get("phase") or "Pending")


def _pod_ready(obj: dict[str, Any]) -> str:
    statuses = mapping(obj.get("status")).get("containerStatuses") or []
    total = len(mapping(obj.get("spec")).get("containers") or [])
    return f"{sum(1 for cs in statuses if cs.get('ready'))}/{total}"


def _restarts(obj: dict[str, Any]) -> str:
    statuses = mapping(obj.get("status")).get("containerStatuses") or []
    return str(sum(int(cs.get("restartCount") or 0) for cs in statuses))


POD_COLUMNS = (columns.NAME, columns.Column("READY", _pod_ready), columns.Column("STATUS", pod_status_text),
               columns.Column("RESTARTS", _restarts), columns.AGE)


# ------------------------------------------------------------------------------------------ Deployment


def default_deployment(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    template = spec.get("template")
    if isinstance(template, dict):
        _default_pod_spec(template.get("spec"))


def validate_deployment(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "required: an object with selector and template")]
    errors = _count(spec.get("replicas"), "spec.replicas")
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*errors, FieldError("spec.template", "required: a pod template")]
    errors += _labels_problems(spec.get("selector"), mapping(template.get("metadata")).get("labels"), "spec")
    errors += validate_pod_spec(template.get("spec"), "spec.template.spec", restart_policies=("Always",))
    return errors


def notices_deployment(obj: dict[str, Any]) -> list[FieldNotice]:
    spec = mapping(obj.get("spec"))
    notices = notices_pod_spec(mapping(spec.get("template")).get("spec"), "spec.template.spec")
    if mapping(spec.get("strategy")).get("type") == "RollingUpdate" or "strategy" in spec:
        notices.append(schema.not_implemented("spec.strategy", "embedded mode replaces pods (Recreate) on a "
                                                               "template change"))
    return notices


def validate_deployment_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    if mapping(old.get("spec")).get("selector") != mapping(new.get("spec")).get("selector"):
        return [FieldError("spec.selector", "field is immutable")]
    return []


def _replicas(obj: dict[str, Any], key: str) -> int:
    return int(mapping(obj.get("status")).get(key) or 0)


DEPLOYMENT_COLUMNS = (
    columns.NAME,
    columns.Column("READY", lambda o: f"{_replicas(o, 'readyReplicas')}/{mapping(o.get('spec')).get('replicas', 1)}"),
    columns.Column("UP-TO-DATE", lambda o: str(_replicas(o, "updatedReplicas"))),
    columns.Column("AVAILABLE", lambda o: str(_replicas(o, "availableReplicas"))),
    columns.AGE,
)


# ------------------------------------------------------------------------------------------ Job


def default_job_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    template = spec.get("template")
    if isinstance(template, dict):
        _default_pod_spec(template.get("spec"), "Never")


def default_job(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    default_job_spec(obj.get("spec"))


def validate_job_spec(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [FieldError(path, "required: an object with template")]
    errors = _count(spec.get("backoffLimit"), f"{path}.backoffLimit")
    errors += _count(spec.get("completions"), f"{path}.completions", minimum=1)
    errors += _count(spec.get("parallelism"), f"{path}.parallelism", minimum=1)
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*errors, FieldError(f"{path}.template", "required: a pod template")]
    errors += validate_pod_spec(template.get("spec"), f"{path}.template.spec", restart_policies=("Never", "OnFailure"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        errors += _count(deadline, f"{path}.activeDeadlineSeconds", minimum=1)
    return errors


def validate_job(obj: dict[str, Any]) -> list[FieldError]:
    return validate_job_spec(obj.get("spec"), "spec")


def notices_job_spec(spec: Any, path: str) -> list[FieldNotice]:
    spec = mapping(spec)
    notices = notices_pod_spec(mapping(spec.get("template")).get("spec"), f"{path}.template.spec")
    for key in ("completions", "parallelism"):
        value = spec.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            notices.append(schema.not_implemented(f"{path}.{key}", f"{value}: embedded mode runs one pod of a Job "
                                                                   "to one completion"))
    return notices


def notices_job(obj: dict[str, Any]) -> list[FieldNotice]:
    return notices_job_spec(obj.get("spec"), "spec")


def validate_job_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    if mapping(old.get("spec")).get("template") != mapping(new.get("spec")).get("template"):
        return [FieldError("spec.template", "field is immutable")]
    return []


def _duration(obj: dict[str, Any]) -> str:
    status = mapping(obj.get("status"))
    start = status.get("startTime")
    if not start:
        return ""
    end = status.get("completionTime")
    from datetime import UTC, datetime

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    try:
        seconds = int(((parse(end) if end else datetime.now(UTC)) - parse(start)).total_seconds())
    except ValueError:
        return ""
    return f"{seconds // 60}m{seconds % 60}s" if seconds >= 120 else f"{max(seconds, 0)}s"


def _job_status_text(obj: dict[str, Any]) -> str:
    conditions = {c.get("type"): c.get("status") for c in mapping(obj.get("status")).get("conditions") or []}
    if conditions.get("Complete") == "True":
        return "Complete"
    if conditions.get("Failed") == "True":
        return "Failed"
    return "Running"  # as kubectl: a Job not finished is running, also between a failed Pod and the next


JOB_COLUMNS = (
    columns.NAME,
    columns.Column("STATUS", _job_status_text),
    columns.Column("COMPLETIONS", lambda o: f"{int(mapping(o.get('status')).get('succeeded') or 0)}/"
                                            f"{mapping(o.get('spec')).get('completions', 1)}"),
    columns.Column("DURATION", _duration),
    columns.AGE,
)


# ------------------------------------------------------------------------------------------ CronJob


def default_cronjob(obj: dict[str, Any], settings: AdmissionSettings) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job = spec.get("jobTemplate")
    if isinstance(job, dict):
        default_job_spec(job.get("spec"))


def validate_cronjob(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "required: an object with schedule and jobTemplate")]
    errors: list[FieldError] = []
    problem = schedule_problem(spec.get("schedule"))
    if problem:
        errors.append(FieldError("spec.schedule", problem))
    problem = timezone_problem(spec.get("timeZone"))
    if problem:
        errors.append(FieldError("spec.timeZone", problem))
    if spec.get("concurrencyPolicy") not in ("Allow", "Forbid", "Replace"):
        errors.append(FieldError("spec.concurrencyPolicy",
                                 f"{spec.get('concurrencyPolicy')!r}: supported values are Allow, Forbid, Replace"))
    if not isinstance(spec.get("suspend"), bool):
        errors.append(FieldError("spec.suspend", "must be true or false"))
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errors += _count(spec.get(key), f"spec.{key}")
    job = spec.get("jobTemplate")
    if not isinstance(job, dict):
        return [*errors, FieldError("spec.jobTemplate", "required: a Job template")]
    labels = mapping(job.get("metadata")).get("labels")
    if labels is not None and (not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
        errors.append(FieldError("spec.jobTemplate.metadata.labels", "must be a map of strings to strings"))
    errors += validate_job_spec(job.get("spec"), "spec.jobTemplate.spec")
    return errors


def notices_cronjob(obj: dict[str, Any]) -> list[FieldNotice]:
    spec = mapping(obj.get("spec"))
    notices = notices_job_spec(mapping(spec.get("jobTemplate")).get("spec"), "spec.jobTemplate.spec")
    if spec.get("startingDeadlineSeconds") is not None:
        notices.append(schema.not_implemented("spec.startingDeadlineSeconds",
                                              "a missed run is always made up once, when Nerve runs again"))
    return notices


CRONJOB_COLUMNS = (
    columns.NAME,
    columns.field("SCHEDULE", "spec", "schedule"),
    columns.Column("SUSPEND", lambda o: "True" if mapping(o.get("spec")).get("suspend") else "False"),
    columns.Column("ACTIVE", lambda o: str(len(mapping(o.get("status")).get("active") or []))),
    columns.Column("LAST SCHEDULE", lambda o: columns.age(mapping(o.get("status")).get("lastScheduleTime"))
                   if mapping(o.get("status")).get("lastScheduleTime") else "<none>"),
    columns.AGE,
)


# ------------------------------------------------------------------------------------------ Event


def validate_event(obj: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    involved = obj.get("involvedObject")
    if not isinstance(involved, dict) or not involved.get("kind") or not involved.get("name"):
        errors.append(FieldError("involvedObject", "required: an object reference with kind and name"))
    if obj.get("type", "Normal") not in ("Normal", "Warning"):
        errors.append(FieldError("type", f"{obj.get('type')!r}: supported values are Normal, Warning"))
    return errors


def _involved(o: dict[str, Any]) -> str:
    ref = mapping(o.get("involvedObject"))
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


EVENT_SCHEMA = schema.resource(None, involvedObject=OPEN, reason=schema.LEAF, message=schema.LEAF,
                               type=schema.LEAF, count=schema.LEAF, firstTimestamp=schema.LEAF,
                               lastTimestamp=schema.LEAF, eventTime=schema.LEAF, source=OPEN,
                               reportingComponent=schema.LEAF, reportingInstance=schema.LEAF, action=schema.LEAF,
                               related=OPEN, series=OPEN)
EVENT_COLUMNS = (
    columns.NAME,
    columns.Column("LAST SEEN",
                   lambda o: columns.age(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp"))),
    columns.field("TYPE", "type"),
    columns.field("REASON", "reason"),
    columns.Column("OBJECT", _involved),
    columns.field("MESSAGE", "message"),
)
