"""What the workload kinds produce in embedded mode (pure builders; the I/O is control/reconcilers/workloads.py).

Kubernetes' controllers, cut down to a laptop: a Deployment keeps `replicas` Pods made from its template
(named `<deployment>-<pod-template-hash>-<suffix>`; a changed template, injected env included, is new
Pods), a Job makes a Pod and makes another after a failure until `backoffLimit`, a CronJob makes a Job
named `<cronjob>-<scheduled time in unix minutes>` at each tick. A Pod is what runs: each container whose
program Nerve can run becomes one `Workload` of the contract, run by the sources service as a process on
the Pod's loopback port. There are no ReplicaSets: the Deployment owns its Pods directly.

What a container runs (`program`): its `command` (+ `args`); for Knative's sample images, Nerve's own
program (`.../cmd/event_display` -> the event printer `nerve display`, `.../cmd/heartbeats` and the seed's
`docker.io/coldtea214/heartbeats` -> `python -m nerve.heartbeats`); for shell base images with no
entrypoint (busybox, alpine, ...), `args` as the command, as `docker run busybox ls` does. Anything else
cannot run without a container runtime: the Pod waits, reason ImageNotRunnable.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from control.api.meta import mapping
from control.api.workloads_cron import has_seconds, latest_due, next_after
from control.conditions import cond, with_ready
from control.reconcilers.garbage import owned_by
from control.reconcilers.resources import sinkbinding
from control.reconcilers.snapshot import Snapshot
from core.contract import Reference, RestartPolicy, Workload

NOT_RUNNABLE = "ImageNotRunnable"
NOT_RUNNABLE_MESSAGE = "embedded mode runs commands; no container runtime"
NO_RUNNER = "NoLocalRunner"
NO_RUNNER_MESSAGE = ("workloads run as local processes only in embedded mode (nerve up); separate services "
                     "run none")
LOOPBACK = "127.0.0.1"
POD_TEMPLATE_HASH = "pod-template-hash"
FINISHED = ("Succeeded", "Failed")

# Knative's sample images by the path they end with (any registry, tag or digest).
_BUILTINS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(^|/)cmd/event_display$"), "event_display"),
    (re.compile(r"(^|/)cmd/heartbeats$"), "heartbeats"),
    (re.compile(r"^coldtea214/heartbeats$"), "heartbeats"),
)
_SERVING_BUILTINS = frozenset({"event_display"})
# Images with no entrypoint: their args are the command (`kubectl run busybox --image=busybox -- ls`).
_SHELL_IMAGES = frozenset({"busybox", "radial/busyboxplus", "alpine", "ubuntu", "debian", "fedora",
                           "python", "bash"})
# Kubernetes' rand.SafeEncodeString alphabet: no vowels, no look-alike characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def injected_env(kind: str, namespace: str, name: str, labels: dict[str, str], snapshot: Snapshot) -> dict[str, str]:
    """The environment a binding injects into a workload's containers, as Knative's SinkBinding webhook
    mutates a subject's pod template: `K_SINK`, `K_CE_OVERRIDES` (and whatever a binding kind adds).

    `kind` is the subject's kind (Deployment, Job, Pod: a CronJob's Jobs are asked as Job), `namespace`
    and `name` its own, `labels` its `metadata.labels` (what a SinkBinding's `subject.selector` matches).
    The SinkBindings' matching and env are resources/sinkbinding.py's. What it returns is set over the template's
    env when a pod is made from the template: a Deployment whose injected env changes gets new pods (its
    pod-template-hash changes), a CronJob's next Job gets the new env, as on Kubernetes. A Pod applied on
    its own gets it when its process (re)starts.
    """
    return sinkbinding.injected_env(kind, namespace, name, labels, snapshot)


# ------------------------------------------------------------------------------------------ programs


@dataclass(frozen=True, slots=True)
class Program:
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    builtin: str = ""
    serves: bool = False


def image_path(image: str) -> str:
    """`gcr.io/knative-releases/knative.dev/eventing-contrib/cmd/event_display@sha256:..` ->
    `knative-releases/knative.dev/eventing-contrib/cmd/event_display`; `docker.io/library/busybox:1` -> `busybox`."""
    path = image.strip().split("@", 1)[0]
    head, _, last = path.rpartition("/")
    last = last.split(":", 1)[0]
    path = f"{head}/{last}" if head else last
    parts = path.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts)


def program(container: dict[str, Any]) -> Program | None:
    """What a container runs locally, or None when it needs a container runtime."""
    command = tuple(container.get("command") or ())
    args = tuple(container.get("args") or ())
    if command:
        return Program(command=command, args=args)
    path = image_path(str(container.get("image") or ""))
    for pattern, builtin in _BUILTINS:
        if pattern.search(path):
            return Program(args=args, builtin=builtin, serves=builtin in _SERVING_BUILTINS)
    if path in _SHELL_IMAGES and args:
        return Program(command=args[:1], args=args[1:])
    return None


# ------------------------------------------------------------------------------------------ names and env


def _encoded(text: str, length: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])


def template_hash(template: dict[str, Any]) -> str:
    import json

    return _encoded(json.dumps(template, sort_keys=True), 10)


def _with_env(spec: dict[str, Any], extra: dict[str, str]) -> dict[str, Any]:
    """The pod spec with `extra` set over every container's env (the SinkBinding webhook's mutation)."""
    if not extra:
        return spec
    containers = []
    for container in spec.get("containers") or []:
        env = [var for var in container.get("env") or [] if var.get("name") not in extra]
        containers.append({**container, "env": [*env, *({"name": k, "value": v} for k, v in extra.items())]})
    return {**spec, "containers": containers}


def _field_value(pod: dict[str, Any], path: str) -> str:
    meta = pod["metadata"]
    if path == "metadata.name":
        return str(meta["name"])
    if path == "metadata.namespace":
        return str(meta.get("namespace", ""))
    if path == "metadata.uid":
        return str(meta.get("uid", ""))
    if path in ("status.podIP", "status.hostIP", "status.podIPs"):
        return LOOPBACK
    if path == "spec.nodeName":
        return "localhost"
    if path == "spec.serviceAccountName":
        return str(mapping(pod.get("spec")).get("serviceAccountName") or "default")
    for key in ("labels", "annotations"):
        prefix = f"metadata.{key}['"
        if path.startswith(prefix):
            return str(mapping(meta.get(key)).get(path[len(prefix):-2], ""))
    return ""


def container_env(pod: dict[str, Any], container: dict[str, Any], port: int,
                  injected: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """PORT, NAME and NAMESPACE (the template's own win), the template's env (value, fieldRef), then `injected`."""
    meta = pod["metadata"]
    env: dict[str, str] = {"NAME": str(meta["name"]), "NAMESPACE": str(meta.get("namespace", ""))}
    if port:
        env["PORT"] = str(port)
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = mapping(mapping(var.get("valueFrom")).get("fieldRef")).get("fieldPath")
        if isinstance(ref, str):
            env[var["name"]] = _field_value(pod, ref)
        elif "valueFrom" not in var:
            env[var["name"]] = ""
    env.update(injected)
    return tuple(env.items())


# ------------------------------------------------------------------------------------------ Pod


def runnable(pod: dict[str, Any]) -> bool:
    return any(program(c) is not None for c in mapping(pod.get("spec")).get("containers") or [])


def _waiting(name: str, reason: str, message: str) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0, "started": False,
            "state": {"waiting": {"reason": reason, "message": message}}}


def _reason(status: dict[str, Any]) -> str:
    return str(mapping(mapping(status.get("state")).get("waiting")).get("reason") or "")


def pod_phase(policy: str, statuses: list[dict[str, Any]]) -> str:
    states = [mapping(s.get("state")) for s in statuses]
    if any("running" in s for s in states):
        return "Running"
    if states and all("terminated" in s for s in states):
        codes = [int(s["terminated"].get("exitCode", 0)) for s in states]
        if all(code == 0 for code in codes) and policy != "Always":
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    if any(int(s.get("restartCount") or 0) > 0 for s in statuses):
        return "Running"  # waiting to be restarted (CrashLoopBackOff)
    return "Pending"


def pod_status(pod: dict[str, Any], port: int, *, local: bool, now: str | None = None) -> dict[str, Any]:
    """A Pod's status: the runner's containerStatuses (kept as reported), placeholders for containers it
    does not run, the phase and conditions from them, and the loopback address and port it owns."""
    spec, old = mapping(pod.get("spec")), mapping(pod.get("status"))
    reported = {s.get("name"): s for s in old.get("containerStatuses") or []}
    statuses: list[dict[str, Any]] = []
    for container in spec.get("containers") or []:
        name = container["name"]
        if not local:
            statuses.append(_waiting(name, NO_RUNNER, NO_RUNNER_MESSAGE))
        elif program(container) is None:
            statuses.append(_waiting(name, NOT_RUNNABLE, f"image {container.get('image')!r}: {NOT_RUNNABLE_MESSAGE}; "
                                                         "give the container a command"))
        elif name in reported and _reason(reported[name]) not in (NOT_RUNNABLE, NO_RUNNER):
            statuses.append(reported[name])
        else:
            statuses.append(_waiting(name, "ContainerCreating", ""))
    phase = pod_phase(str(spec.get("restartPolicy", "Always")), statuses)
    if old.get("phase") in FINISHED:
        phase = str(old["phase"])  # a finished pod stays finished
    not_ready = [s for s in statuses if not s.get("ready")]
    if phase in FINISHED:
        ready = cond("ContainersReady", False, "PodCompleted", "")
    elif not_ready:
        waiting = mapping(mapping(not_ready[0].get("state")).get("waiting"))
        terminated = mapping(mapping(not_ready[0].get("state")).get("terminated"))
        reason = str(waiting.get("reason") or terminated.get("reason") or "ContainersNotReady")
        message = str(waiting.get("message") or f"containers with unready status: "
                                                f"[{' '.join(s['name'] for s in not_ready)}]")
        ready = cond("ContainersReady", False, reason, message)
    else:
        ready = cond("ContainersReady", True)
    conditions = with_ready([cond("PodScheduled", True), cond("Initialized", True), ready],
                            old.get("conditions"), now)
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "containerStatuses": statuses,
                              "hostIP": LOOPBACK, "podIP": LOOPBACK, "qosClass": "BestEffort"}
    if port:
        status["port"] = port
    for key in ("startTime",):
        if key in old:
            status[key] = old[key]
    return status


def _is_generated(pod: dict[str, Any]) -> bool:
    return any(ref.get("kind") in ("Deployment", "Job") for ref in pod["metadata"].get("ownerReferences") or [])


def pod_workloads(pod: dict[str, Any], port: int, snapshot: Snapshot) -> list[Workload]:
    """The contract entries of a live, unfinished Pod: one per container Nerve can run."""
    meta, spec = pod["metadata"], mapping(pod.get("spec"))
    if mapping(pod.get("status")).get("phase") in FINISHED:
        return []
    # A generated Pod carries its owner's injected env in its spec already; a Pod applied on its own is
    # the subject itself.
    injected = {} if _is_generated(pod) else injected_env(
        "Pod", meta["namespace"], meta["name"], dict(meta.get("labels") or {}), snapshot)
    reference = Reference(meta["uid"], meta["namespace"], meta["name"], "Pod")
    policy: RestartPolicy = spec.get("restartPolicy", "Always")
    out = []
    for container in spec.get("containers") or []:
        prog = program(container)
        if prog is None:
            continue
        out.append(Workload(
            uid=f"{meta['uid']}/{container['name']}", reference=reference, container=container["name"],
            command=prog.command, args=prog.args, builtin=prog.builtin,
            env=container_env(pod, container, port, injected), port=port, restart_policy=policy,
            grace_seconds=float(spec.get("terminationGracePeriodSeconds", 30)),
            working_dir=str(container.get("workingDir") or ""), serves=prog.serves))
    return out


# ------------------------------------------------------------------------------------------ children


def _pod_from_template(owner: dict[str, Any], name: str, template: dict[str, Any], labels: dict[str, str],
                       injected: dict[str, str]) -> dict[str, Any]:
    tmeta = mapping(template.get("metadata"))
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"],
                         "labels": {**(tmeta.get("labels") or {}), **labels},
                         "annotations": dict(tmeta.get("annotations") or {})},
            "spec": _with_env(dict(mapping(template.get("spec"))), injected)}


def owned(snapshot: Snapshot, kind: str, owner: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((o for o in snapshot.all(kind) if owned_by(o, owner)), key=lambda o: o["metadata"]["name"])


def _ready_count(pods: list[dict[str, Any]]) -> int:
    return sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                      for c in mapping(p.get("status")).get("conditions") or []))


def _first_waiting_reason(pods: list[dict[str, Any]]) -> tuple[str, str] | None:
    for pod in pods:
        for cs in mapping(pod.get("status")).get("containerStatuses") or []:
            waiting = mapping(mapping(cs.get("state")).get("waiting"))
            if waiting.get("reason") in (NOT_RUNNABLE, NO_RUNNER, "CrashLoopBackOff"):
                return str(waiting["reason"]), f"pod {pod['metadata']['name']}: {waiting.get('message', '')}"
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    """What a controller does this pass: the children it wants (created or kept), those it deletes, its
    status, and when it must look again (a CronJob's next tick, a Job's back-off)."""

    status: dict[str, Any]
    wanted: list[dict[str, Any]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    wake_at: datetime | None = None


def deployment_plan(dep: dict[str, Any], pods: list[dict[str, Any]], snapshot: Snapshot,
                    now: str | None = None) -> Plan:
    meta, spec = dep["metadata"], dep["spec"]
    injected = injected_env("Deployment", meta["namespace"], meta["name"], dict(meta.get("labels") or {}), snapshot)
    template = {**spec["template"], "spec": _with_env(dict(spec["template"]["spec"]), injected)}
    hashed = template_hash(template)
    replicas = int(spec.get("replicas", 1))
    uid, base = meta["uid"], f"{meta['name']}-{hashed}"
    wanted = [_pod_from_template(dep, f"{base}-{_encoded(f'{uid}/{hashed}/{i}', 5)}", template,
                                 {POD_TEMPLATE_HASH: hashed}, {}) for i in range(replicas)]
    names = {p["metadata"]["name"] for p in wanted}
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    current = [p for p in live if p["metadata"]["name"] in names]
    ready = _ready_count(current)
    status: dict[str, Any] = {"observedGeneration": meta["generation"], "replicas": len(live),
                              "updatedReplicas": len(current), "readyReplicas": ready, "availableReplicas": ready}
    if ready < replicas:
        status["unavailableReplicas"] = replicas - ready
    why = _first_waiting_reason(current)
    if ready >= replicas:
        available = cond("Available", True, "MinimumReplicasAvailable", "Deployment has minimum availability.")
    elif why is not None:
        available = cond("Available", False, why[0], why[1])
    else:
        available = cond("Available", False, "MinimumReplicasUnavailable", "Deployment does not have minimum "
                                                                           "availability.")
    progressing = cond("Progressing", True, "NewReplicaSetAvailable" if ready >= replicas else "ReplicaSetUpdated")
    status["conditions"] = with_ready([available, progressing], mapping(dep.get("status")).get("conditions"), now)
    return Plan(status, wanted, [p for p in live if p["metadata"]["name"] not in names])


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _restarts(pod: dict[str, Any]) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in mapping(pod.get("status")).get("containerStatuses") or [])


def _finished_at(pod: dict[str, Any]) -> datetime | None:
    times = [_parse(mapping(mapping(cs.get("state")).get("terminated")).get("finishedAt"))
             for cs in mapping(pod.get("status")).get("containerStatuses") or []]
    return max((t for t in times if t is not None), default=None)


JOB_BACKOFF = timedelta(seconds=10)
JOB_BACKOFF_MAX = timedelta(minutes=6)


def job_plan(job: dict[str, Any], pods: list[dict[str, Any]], snapshot: Snapshot, now: datetime) -> Plan:
    """One Pod at a time; after a failed one (restartPolicy Never) another, with Kubernetes' back-off
    (10 s doubling, at most 6 min), until `backoffLimit` failures; with OnFailure the Pod restarts in
    place and its restarts count. Complete when a Pod succeeded."""
    meta, spec = job["metadata"], job["spec"]
    old = mapping(job.get("status"))
    succeeded = [p for p in pods if mapping(p.get("status")).get("phase") == "Succeeded"]
    failed = [p for p in pods if mapping(p.get("status")).get("phase") == "Failed"]
    active = [p for p in pods if mapping(p.get("status")).get("phase") not in FINISHED
              and not p["metadata"].get("deletionTimestamp")]
    failures = len(failed) + sum(_restarts(p) for p in active)
    limit = int(spec.get("backoffLimit", 6))
    status: dict[str, Any] = {"startTime": old.get("startTime") or _stamp(now)}
    conditions = [c for c in old.get("conditions") or [] if c.get("type") in ("Complete", "Failed")]
    wanted: list[dict[str, Any]] = []
    delete: list[dict[str, Any]] = []
    wake: datetime | None = None
    done = any(c.get("status") == "True" for c in conditions)
    if not done and succeeded:
        status["completionTime"] = _stamp(_finished_at(succeeded[0]) or now)
        conditions = [{"type": "Complete", "status": "True", "lastProbeTime": _stamp(now),
                       "lastTransitionTime": _stamp(now)}]
    elif not done and failures > limit:
        conditions = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                       "message": "Job has reached the specified backoff limit", "lastProbeTime": _stamp(now),
                       "lastTransitionTime": _stamp(now)}]
        delete = active
    elif not done and not active:
        last = max((t for t in (_finished_at(p) for p in failed) if t is not None), default=None)
        due = now if last is None else last + min(JOB_BACKOFF * (2 ** max(len(failed) - 1, 0)), JOB_BACKOFF_MAX)
        if due <= now:
            labels = {"controller-uid": meta["uid"], "batch.kubernetes.io/controller-uid": meta["uid"],
                      "job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"]}
            uid = meta["uid"]
            name = f"{meta['name']}-{_encoded(f'{uid}/{len(pods)}', 5)}"
            injected = injected_env("Job", meta["namespace"], meta["name"], dict(meta.get("labels") or {}), snapshot)
            wanted = [_pod_from_template(job, name, spec["template"], labels, injected)]
        else:
            wake = due
    else:
        old_completion = old.get("completionTime")
        if old_completion:
            status["completionTime"] = old_completion
    wanted += [p for p in active if p not in delete]
    status.update({"active": len([p for p in active if p not in delete]) or None, "succeeded": len(succeeded) or None,
                   "failed": failures or None, "conditions": conditions or None})
    return Plan({k: v for k, v in status.items() if v is not None}, wanted, delete, wake)


def job_finished(job: dict[str, Any]) -> str | None:
    """"Complete" or "Failed" once the Job is over."""
    for c in mapping(job.get("status")).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def cronjob_plan(cj: dict[str, Any], jobs: list[dict[str, Any]], now: datetime) -> Plan:
    """At the latest due tick, a Job `<cronjob>-<unix minutes>` (`<unix seconds>` for a schedule with a
    seconds field), subject to suspend and concurrencyPolicy; finished Jobs beyond the history limits go."""
    meta, spec = cj["metadata"], cj["spec"]
    old = mapping(cj.get("status"))
    schedule, zone = str(spec["schedule"]), spec.get("timeZone")
    since = _parse(old.get("lastScheduleTime")) or _parse(meta.get("creationTimestamp")) or now
    active = [j for j in jobs if job_finished(j) is None and not j["metadata"].get("deletionTimestamp")]
    wanted = list(active)
    delete: list[dict[str, Any]] = []
    status: dict[str, Any] = {k: old[k] for k in ("lastScheduleTime", "lastSuccessfulTime") if k in old}
    due = None if spec.get("suspend") else latest_due(schedule, since, now, zone)
    if due is not None and not (spec.get("concurrencyPolicy") == "Forbid" and active):
        if spec.get("concurrencyPolicy") == "Replace":
            delete, wanted = list(active), []
        stamp = int(due.timestamp()) if has_seconds(schedule) else int(due.timestamp() // 60)
        template = mapping(spec.get("jobTemplate"))
        tmeta = mapping(template.get("metadata"))
        wanted.append({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": f"{meta['name']}-{stamp}", "namespace": meta["namespace"],
                                    "labels": dict(tmeta.get("labels") or {}),
                                    "annotations": {**(tmeta.get("annotations") or {}),
                                                    "batch.kubernetes.io/cronjob-scheduled-timestamp": _stamp(due)}},
                       "spec": dict(mapping(template.get("spec")))})
        status["lastScheduleTime"] = _stamp(due)
    for outcome, limit_key in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
        finished = sorted((j for j in jobs if job_finished(j) == outcome),
                          key=lambda j: j["metadata"].get("creationTimestamp", ""))
        keep = int(spec.get(limit_key, 3 if outcome == "Complete" else 1))
        delete += finished[:max(len(finished) - keep, 0)]
        if outcome == "Complete" and finished:
            last = mapping(finished[-1].get("status")).get("completionTime")
            if last:
                status["lastSuccessfulTime"] = last
    status["active"] = [{"apiVersion": "batch/v1", "kind": "Job", "namespace": meta["namespace"],
                         "name": j["metadata"]["name"], "uid": j["metadata"].get("uid", "")}
                        for j in wanted if j["metadata"].get("uid")]
    if not status["active"]:
        del status["active"]
    wake = None if spec.get("suspend") else next_after(schedule, now, zone)
    return Plan(status, wanted, delete, wake)
