"""Nerve's admission as the API server's webhooks: the same `admit()` (control/api/admission.py) that every
`nerve apply` runs, so `kubectl apply` of an invalid Trigger is refused with Nerve's message and what is
stored is defaulted as Nerve defaults it.

- `POST /mutate` (a MutatingWebhookConfiguration): the defaults `admit()` adds, as a JSONPatch of the
  request's object (`spec`, and labels and annotations, e.g. a Broker's class annotation). An object
  `admit()` refuses is left as it is: the validating webhook refuses it, with the message.
- `POST /validate` (a ValidatingWebhookConfiguration): allowed, with Nerve's notices as the API server's
  warnings (a field Nerve knows but does not implement), or denied with every field error, `path: reason`
  joined by `; `, as `nerve apply` prints them. Unknown fields are the API server's own business (it
  prunes them, or refuses them under `kubectl apply --validate=strict`), so they are not reported twice.
- `POST /convert` (a CRD's `conversion.strategy: Webhook`): an object of an older version into the
  storage version by `Kind.convert` (a v1beta1 PingSource's `jsonData` into `data`); the other way,
  only `apiVersion` changes (the older versions Nerve serves read the storage shape).

- `POST /bind` (the same MutatingWebhookConfiguration, a webhook of its own for v1 Pods and batch/v1
  Jobs on CREATE): the API server refuses changes to a Job's template or a Pod's containers once stored,
  so, as Knative does, a SinkBinding binds them as they are created: K_SINK, K_CE_OVERRIDES, K_CA_CERTS
  by `bound_object` (control/reconcilers/resources/sinkbinding.py), the very function the reconciler
  patches Deployments and CronJobs with. That webhook's `failurePolicy` is Ignore and it skips
  kube-system and Nerve's own namespace: a Nerve outage never blocks Pods.

Objects another controller serves (`served`: a Broker of another class, a Trigger on one, a channel of
another kind; control/reconcilers/served.py) are allowed untouched, next to a real Knative Eventing whose
own webhooks default and check them.

Requests from `trusted` users (the operator's own identity) are allowed untouched: the operator writes
fields a user may not (a channel's `spec.subscribers`, finalizers of objects being deleted).

The webhook configurations ask for the storage version (`matchPolicy: Equivalent`), so a request for an
older version reaches `admit()` converted by the API server.
"""

from __future__ import annotations

import base64
import copy
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from control.api import channel, kinds
from control.api.admission import AdmissionSettings, FieldValidation, Refused, admit
from control.crds import crd_kinds
from control.reconcilers.resources.sinkbinding import bound_object
from control.reconcilers.served import Served, own, reference
from control.reconcilers.snapshot import Snapshot
from core.errors import FieldError, InvalidResource

log = logging.getLogger("nerve.operator.webhooks")
Obj = dict[str, Any]
ConfigMapSource = Callable[[], Awaitable[Obj | None]]
Lookup = Callable[[str, str, str], Awaitable[Obj | None]]
"""(kind, namespace, name) -> the stored object, or None."""
_CHANNEL_KINDS = frozenset(kind.kind for kind in kinds.CHANNEL_KINDS)

MUTATE_PATH = "/mutate"
VALIDATE_PATH = "/validate"
CONVERT_PATH = "/convert"
BIND_PATH = "/bind"
BindingsSource = Callable[[str], Awaitable[Snapshot]]
"""A namespace -> its SinkBindings and the Namespace itself (what `bound_object` reads)."""
_PATCHED_META = ("labels", "annotations")


def _json_patch(ops: list[Obj]) -> Obj:
    """The part of an AdmissionReview response that carries a JSONPatch."""
    return {"patchType": "JSONPatch", "patch": base64.b64encode(orjson.dumps(ops)).decode()}


def _review(request_uid: str, response: Obj) -> Obj:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": request_uid, **response}}


def defaults_patch(obj: Obj, admitted: Obj) -> list[Obj]:
    """The JSONPatch (RFC 6902) that makes `obj` what admission made of it: its top-level parts (`spec`)
    and the labels and annotations. Metadata the server owns and `status` are never touched."""
    ops: list[Obj] = []
    for key, value in admitted.items():
        if key in ("apiVersion", "kind", "metadata", "status"):
            continue
        if obj.get(key) != value:
            ops.append({"op": "add", "path": f"/{key}", "value": value})  # add replaces an existing member
    meta, new_meta = obj.get("metadata") or {}, admitted.get("metadata") or {}
    for key in _PATCHED_META:
        if key in new_meta and meta.get(key) != new_meta[key]:
            ops.append({"op": "add", "path": f"/metadata/{key}", "value": new_meta[key]})
    return ops


class Webhooks:
    def __init__(self, admission: AdmissionSettings, *, channel_defaults: ConfigMapSource | None = None,
                 trusted: frozenset[str] = frozenset(), served: Served | None = None,
                 lookup: Lookup | None = None, bindings: BindingsSource | None = None,
                 selection_mode: str = "exclusion") -> None:
        """`channel_defaults` reads the ConfigMap knative-eventing/default-ch-webhook (a Channel's default
        template), as `nerve apply` does; `trusted` are the usernames whose writes are not checked; `served`
        the Broker classes and channel kinds that are Nerve's (None: all), `lookup` reads the Broker a
        Trigger names (or the channel a Subscription names) to tell."""
        self._admission = admission
        self._served = served
        self._lookup = lookup
        self._bindings = bindings
        self._selection_mode = selection_mode
        self._channel_defaults = channel_defaults
        self.trusted = trusted

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post(MUTATE_PATH, self._mutate)
        app.router.add_post(VALIDATE_PATH, self._validate)
        app.router.add_post(CONVERT_PATH, self._convert)
        app.router.add_post(BIND_PATH, self._bind)
        return app

    async def _settings(self, kind: kinds.Kind) -> AdmissionSettings:
        if kind.kind != "Channel" or self._channel_defaults is None:
            return self._admission
        return channel.with_defaults_from(self._admission, await self._channel_defaults())

    async def _admit(self, request: Obj) -> tuple[Obj, Any]:
        """The object and what admission makes of it (an Admitted, or the InvalidResource it raised)."""
        obj: Obj = request.get("object") or {}
        old = request.get("oldObject") if request.get("operation") == "UPDATE" else None
        try:
            kind = kinds.for_manifest(str(obj.get("apiVersion")), str(obj.get("kind")))
            settings = await self._settings(kind) if kind is not None else self._admission
            return obj, admit(copy.deepcopy(obj), old, settings, FieldValidation.IGNORE)
        except InvalidResource as exc:
            return obj, exc

    def _trusted(self, request: Obj) -> bool:
        return str((request.get("userInfo") or {}).get("username", "")) in self.trusted

    async def _not_ours(self, request: Obj) -> bool:
        """Whether the request's object is another controller's (a Broker of a class Nerve does not serve)."""
        if self._served is None:
            return False
        obj: Obj = request.get("object") or {}
        ref = reference(obj)
        referenced = None
        if ref is not None and self._lookup is not None:
            namespace = str((obj.get("metadata") or {}).get("namespace") or request.get("namespace") or "")
            try:
                referenced = await self._lookup(ref[0], namespace, ref[1])
            except Exception as exc:  # noqa: BLE001 - unreadable: judged as Nerve's, checked as ever
                log.warning("could not read %s %s/%s: %s", ref[0], namespace, ref[1], exc)
        return not own(obj, self._served, _CHANNEL_KINDS, referenced)

    def _passes(self, request: Obj) -> bool:
        return self._trusted(request) or request.get("operation") not in ("CREATE", "UPDATE")

    async def _mutate(self, http: web.Request) -> web.Response:
        request = await _request(http)
        if self._passes(request) or await self._not_ours(request):
            return _json(_review(request["uid"], {"allowed": True}))
        obj, outcome = await self._admit(request)
        if isinstance(outcome, InvalidResource):
            return _json(_review(request["uid"], {"allowed": True}))  # /validate refuses it, saying why
        ops = defaults_patch(obj, outcome.obj)
        response: Obj = {"allowed": True}
        if ops:
            response |= _json_patch(ops)
        return _json(_review(request["uid"], response))

    async def _bind(self, http: web.Request) -> web.Response:
        request = await _request(http)
        obj: Obj = request.get("object") or {}
        if (request.get("operation") != "CREATE" or self._bindings is None
                or obj.get("kind") not in ("Pod", "Job")):
            return _json(_review(request["uid"], {"allowed": True}))
        meta = obj.setdefault("metadata", {})
        namespace = str(meta.get("namespace") or request.get("namespace") or "")
        # A Job's Pods and a Deployment's come with generateName only: a selector can still match them.
        named = {**obj, "metadata": {**meta, "namespace": namespace,
                                     "name": str(meta.get("name") or request.get("name") or "")}}
        bound = bound_object(named, await self._bindings(namespace), self._selection_mode)
        response: Obj = {"allowed": True}
        if bound is not named:
            ops = [{"op": "add", "path": "/spec", "value": bound["spec"]}]
            if bound["metadata"].get("annotations") != meta.get("annotations"):
                ops.append({"op": "add", "path": "/metadata/annotations",
                            "value": bound["metadata"].get("annotations") or {}})
            log.info("bound %s by SinkBinding %s", _describe(request),
                     (bound["metadata"].get("annotations") or {}).get("sinkbindings.sources.nerve.dev/bound"))
            response |= _json_patch(ops)
        return _json(_review(request["uid"], response))

    async def _validate(self, http: web.Request) -> web.Response:
        request = await _request(http)
        if self._passes(request) or await self._not_ours(request):
            return _json(_review(request["uid"], {"allowed": True}))
        _, outcome = await self._admit(request)
        if isinstance(outcome, InvalidResource):
            warnings = [str(w) for w in outcome.warnings] if isinstance(outcome, Refused) else []
            log.info("refused %s %s: %s", request.get("operation"), _describe(request), outcome)
            return _json(_review(request["uid"], {
                "allowed": False, "warnings": warnings,
                "status": {"code": 422, "reason": "Invalid", "message": str(outcome)}}))
        return _json(_review(request["uid"], {"allowed": True, "warnings": [str(w) for w in outcome.warnings]}))

    async def _convert(self, http: web.Request) -> web.Response:
        review = orjson.loads(await http.read())
        request = review.get("request") or {}
        desired = str(request.get("desiredAPIVersion", ""))
        converted: list[Obj] = []
        try:
            for obj in request.get("objects") or []:
                converted.append(convert(obj, desired))
        except InvalidResource as exc:
            result: Obj = {"status": "Failure", "message": str(exc)}
            return _json({"apiVersion": review.get("apiVersion", "apiextensions.k8s.io/v1"), "kind": "ConversionReview",
                          "response": {"uid": request.get("uid", ""), "convertedObjects": [], "result": result}})
        return _json({"apiVersion": review.get("apiVersion", "apiextensions.k8s.io/v1"), "kind": "ConversionReview",
                      "response": {"uid": request.get("uid", ""), "convertedObjects": converted,
                                   "result": {"status": "Success"}}})


def convert(obj: Obj, desired: str) -> Obj:
    """One object of a conversion review into `desired`: to the storage version through `Kind.convert`;
    to an older version by its apiVersion alone (metadata and status are kept as they are)."""
    kind = kinds.for_manifest(str(obj.get("apiVersion")), str(obj.get("kind")))
    if kind is None or desired not in kind.api_versions():
        raise InvalidResource([FieldError("apiVersion", f"cannot convert {obj.get('kind')} "
                                                        f"{obj.get('apiVersion')} to {desired}")])
    out = copy.deepcopy(obj)
    if desired == kind.api_version and out.get("apiVersion") != kind.api_version:
        kind.convert(out)
    out["apiVersion"] = desired
    return out


async def _request(http: web.Request) -> Obj:
    review = orjson.loads(await http.read())
    request: Obj = review.get("request") or {}
    request.setdefault("uid", "")
    return request


def _describe(request: Obj) -> str:
    obj = request.get("object") or {}
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace') or request.get('namespace') or ''}/{meta.get('name', '')}"


def _json(body: Obj) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def server_ssl(cert_dir: Path) -> ssl.SSLContext:
    """The webhooks' TLS: tls.crt and tls.key of a kubernetes.io/tls Secret mounted at `cert_dir`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    return context


WEBHOOK_NAME = "nerve.knative.dev"
"""The configurations' name, and (prefixed) the webhooks': `validation.nerve.knative.dev`."""


def binding_hook(client_config: Callable[[str], Obj], own_namespace: str) -> Obj:
    """The SinkBinding webhook: Pods and Jobs on CREATE, never blocking them (Ignore), never in kube-system
    or Nerve's own namespace (Knative skips its system namespace likewise)."""
    return {"name": f"sinkbindings.{WEBHOOK_NAME}", "clientConfig": client_config(BIND_PATH),
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"],
                       "scope": "Namespaced"},
                      {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs"],
                       "operations": ["CREATE"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                        "values": sorted({"kube-system", own_namespace} - {""})}]},
            "matchPolicy": "Equivalent", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "failurePolicy": "Ignore", "timeoutSeconds": 5, "reinvocationPolicy": "IfNeeded"}


def configurations(client_config: Callable[[str], Obj], own_namespace: str = "") -> list[Obj]:
    """The MutatingWebhookConfiguration and ValidatingWebhookConfiguration for every kind with a CRD, each
    webhook's `clientConfig` from `client_config(path)` (a `service` or a `url`, with the `caBundle`), and
    the SinkBinding webhook for Pods and Jobs (`own_namespace`: Nerve's, which it skips).
    The chart renders the same rules (helm/nerve/templates/webhooks.yaml); a test compares them."""
    by_group: dict[str, list[kinds.Kind]] = {}
    for kind in crd_kinds():
        by_group.setdefault(kind.group, []).append(kind)
    rules = [{"apiGroups": [group], "apiVersions": sorted({k.api_version.rpartition("/")[2] for k in group_kinds}),
              "resources": sorted(k.plural for k in group_kinds), "operations": ["CREATE", "UPDATE"], "scope": "*"}
             for group, group_kinds in sorted(by_group.items())]

    def hook(prefix: str, path: str) -> Obj:
        return {"name": f"{prefix}.{WEBHOOK_NAME}", "clientConfig": client_config(path), "rules": rules,
                "matchPolicy": "Equivalent", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail", "timeoutSeconds": 10}

    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": f"defaulting.{WEBHOOK_NAME}"},
         "webhooks": [{**hook("defaulting", MUTATE_PATH), "reinvocationPolicy": "IfNeeded"},
                      binding_hook(client_config, own_namespace)]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": f"validation.{WEBHOOK_NAME}"}, "webhooks": [hook("validation", VALIDATE_PATH)]},
    ]
