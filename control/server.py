"""The control API over HTTP (what `nerve apply/get/delete/describe` talk to), plus health and metrics.

    POST   /api/v1/apply[?fieldValidation=Strict|Warn|Ignore]
                                                   {"items": [manifest, ...]}  -> {"items": results, "warnings": [...]}
    GET    /api/v1/resources/{kind}[?namespace=ns][&showSecrets=true]          -> {"items": [...]}
    GET    /api/v1/resources/{kind}/{namespace}/{name}[?showSecrets=true]      -> the resource with status
    DELETE /api/v1/resources/{kind}/{namespace}/{name}
    GET    /api/v1/contract[?after=<generation>][&timeoutSeconds=0..60]
                                                   the contract; with `after`, held until control publishes
                                                   another generation (200) or the wait ends (304)
    GET    /api/v1/logs/{namespace}/{pod}[?container=c][&tailLines=n][&follow=true]
                                                   a local Pod's output as text (embedded mode), like kubectl logs
    POST   /api/v1/tokens                          {"audience", "subject"?, "expiresSeconds"?} -> a JWT Nerve signed
    GET    /.well-known/openid-configuration  /openid/v1/jwks     the OIDC issuer's discovery and keys (open)
    GET    /healthz  /readyz  /metrics

Errors are JSON: {"error": <class>, "reason": ..., "field": ..., "details": [{"field", "reason", "resource"}]};
a refused apply also carries the "warnings" ({"field", "message", "resource"}) found on the way.

Every request but /healthz, /readyz and /metrics needs `Authorization: Bearer <token>`, a known Host, no
foreign Origin and JSON bodies (control/auth.py); secret-looking ConfigMap values are redacted unless
showSecrets=true (control/redaction.py). See docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from control import issuer as oidc_issuer
from control.api.admission import FieldValidation, Refused
from control.auth import Access, guard
from control.contract_board import ContractBoard
from control.redaction import redact
from control.service import ControlService
from core import observability
from core.contract import workload_log
from core.errors import InvalidResource, NerveError, NotFound, Unauthorized
from core.oidc import Issuer

SERVICE_KEY = web.AppKey("control_service", ControlService)
BOARD_KEY = web.AppKey("contract_board", ContractBoard)
MAX_CONTRACT_WAIT_S = 60
LOGS_KEY = web.AppKey("workload_logs", Path)
FOLLOW_POLL_S = 0.2
log = logging.getLogger("nerve.control")


class InvalidRequest(NerveError):
    """A query parameter the API cannot take."""

    status = 400


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def error_response(exc: NerveError) -> web.Response:
    body: dict[str, Any] = exc.to_json()
    if isinstance(exc, InvalidResource):
        body["details"] = exc.details()
    if isinstance(exc, Refused):
        body["warnings"] = [w.to_json() for w in exc.warnings]
    if isinstance(exc, Unauthorized):
        return _json(body, exc.status, {"WWW-Authenticate": exc.challenge})
    return _json(body, exc.status)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except NerveError as exc:
        return error_response(exc)
    except web.HTTPException:
        raise
    except Exception as exc:  # the API answers JSON even for a bug; the traceback goes to the log
        log.exception("control API %s %s failed", request.method, request.path)
        return _json({"error": "InternalError", "reason": f"{type(exc).__name__}: {exc}"}, 500)


async def _apply(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _json({"error": "InvalidRequest", "reason": f"body is not JSON: {exc}"}, 400)
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return _json({"error": "InvalidRequest", "reason": "body must be {\"items\": [manifest, ...]}",
                      "field": "items"}, 400)
    validation = FieldValidation.parse(request.query.get("fieldValidation", FieldValidation.WARN.value))
    applied = await request.app[SERVICE_KEY].apply(items, validation)
    return _json({"items": applied.items, "warnings": [w.to_json() for w in applied.warnings]})


def _show_secrets(request: web.Request) -> bool:
    value = request.query.get("showSecrets", "false").lower()
    if value not in ("true", "false"):
        raise InvalidRequest(f"showSecrets={value!r}: expected true or false", field="showSecrets")
    return value == "true"


async def _list(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    show = _show_secrets(request)
    items = await service.list_resources(request.match_info["kind"], request.query.get("namespace"))
    return _json({"items": items if show else [redact(obj) for obj in items]})


async def _get(request: web.Request) -> web.Response:
    m = request.match_info
    show = _show_secrets(request)
    obj = await request.app[SERVICE_KEY].get(m["kind"], m["namespace"], m["name"])
    return _json(obj if show else redact(obj))


async def _delete(request: web.Request) -> web.Response:
    m = request.match_info
    await request.app[SERVICE_KEY].delete(m["kind"], m["namespace"], m["name"])
    return _json({"deleted": {"kind": m["kind"], "namespace": m["namespace"], "name": m["name"]}})


def _int_query(request: web.Request, name: str, default: int, lowest: int, highest: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"{name}={text!r}: expected an integer", field=name) from None
    if not lowest <= value <= highest:
        raise InvalidRequest(f"{name}={value}: expected {lowest} to {highest}", field=name)
    return value


async def _contract(request: web.Request) -> web.Response:
    board = request.app[BOARD_KEY]
    after = _int_query(request, "after", -1, -1, 2**63 - 1)
    wait = _int_query(request, "timeoutSeconds", 30, 0, MAX_CONTRACT_WAIT_S)
    contract = await board.after(after, wait)
    if contract is None:
        return web.Response(status=304)
    # No size limit anywhere on this path (a ConfigMap's 1 MiB is Knative's contract's): 10,000 Triggers is
    # 8 MB of JSON, about 0.5 MB gzipped.
    gzipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    headers = {"Vary": "Accept-Encoding", **({"Content-Encoding": "gzip"} if gzipped else {})}
    return web.Response(body=await board.body(contract, gzipped=gzipped), content_type="application/json",
                        headers=headers)


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (`gzip`, `gzip;q=0.5`, `*`), not `gzip;q=0`."""
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def _tail(data: bytes, lines: int | None) -> bytes:
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def _log_request(request: web.Request) -> tuple[int | None, bool]:
    tail = request.query.get("tailLines")
    follow = request.query.get("follow", "false").lower()
    if follow not in ("true", "false"):
        raise InvalidRequest(f"follow={follow!r}: expected true or false", field="follow")
    if tail is not None and not (tail.isdigit() or tail == "-1"):
        raise InvalidRequest(f"tailLines={tail!r}: expected a whole number", field="tailLines")
    lines = None if tail is None or tail == "-1" else int(tail)
    return lines, follow == "true"


async def _logs(request: web.Request) -> web.StreamResponse:
    """What a local Pod's container wrote, as `kubectl logs` shows it; with follow, new output as it comes,
    until the Pod is gone or finished."""
    m, service = request.match_info, request.app[SERVICE_KEY]
    lines, follow = _log_request(request)
    pod = await service.get("pods", m["namespace"], m["pod"])
    containers = [c.get("name") for c in pod["spec"].get("containers") or []]
    container = request.query.get("container") or (containers[0] if containers else "")
    if container not in containers:
        raise NotFound(f'container "{container}" is not valid for pod "{m["pod"]}"; its containers: '
                       f"{', '.join(str(c) for c in containers)}", field="container")
    root = request.app.get(LOGS_KEY)
    if root is None:
        raise NotFound("logs exist only in embedded mode (nerve up), where Pods run as local processes")
    path = workload_log(root, m["namespace"], m["pod"], container)
    waiting = _waiting_reason(pod, container)
    if waiting and not path.exists():
        raise InvalidRequest(f'container "{container}" in pod "{m["pod"]}" is waiting to start: {waiting}')
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    try:
        await _stream(response, path, lines, follow, service, pod)
    except ConnectionResetError:  # the reader went away (Ctrl-C on `nerve logs -f`)
        return response
    await response.write_eof()
    return response


def _waiting_reason(pod: dict[str, Any], container: str) -> str:
    """Why a container that never ran waits (ImageNotRunnable, NoLocalRunner), as kubectl logs says it."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            return str(reason) if reason and reason != "ContainerCreating" else ""
    return ""


def _read_from(path: Path, offset: int) -> bytes:
    """A local file read (the log of a process on this machine): quick enough for the event loop."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


async def _stream(response: web.StreamResponse, path: Path, lines: int | None, follow: bool,
                  service: ControlService, pod: dict[str, Any]) -> None:
    meta = pod["metadata"]
    data = _read_from(path, 0)
    await response.write(_tail(data, lines))
    offset = len(data)
    while follow:
        await asyncio.sleep(FOLLOW_POLL_S)
        more = _read_from(path, offset)
        if more:
            offset += len(more)
            await response.write(more)
            continue
        current = await service.store.get("Pod", meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("uid") != meta.get("uid") or \
                (current.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return


def create_app(service: ControlService, access: Access, board: ContractBoard | None = None, *,
               logs_dir: Path | None = None, issuer: Issuer | None = None) -> web.Application:
    # _errors outermost, so the guard's refusals are JSON like every other error.
    app = web.Application(middlewares=[_errors, guard(access)], client_max_size=16 * 1024 * 1024)
    app[SERVICE_KEY] = service
    app[BOARD_KEY] = board or ContractBoard()
    if logs_dir is not None:
        app[LOGS_KEY] = logs_dir
    app.router.add_post("/api/v1/apply", _apply)
    app.router.add_get("/api/v1/resources/{kind}", _list)
    app.router.add_get("/api/v1/resources/{kind}/{namespace}/{name}", _get)
    app.router.add_delete("/api/v1/resources/{kind}/{namespace}/{name}", _delete)
    app.router.add_get("/api/v1/contract", _contract)
    app.router.add_get("/api/v1/logs/{namespace}/{pod}", _logs)
    if issuer is not None:
        oidc_issuer.add_routes(app, issuer)
    observability.add_routes(app)
    return app
