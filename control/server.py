"""The control API over HTTP (what `nerve apply/get/delete/describe` talk to), plus health and metrics.

    POST   /api/v1/apply[?fieldValidation=Strict|Warn|Ignore]
                                                   {"items": [manifest, ...]}  -> {"items": results, "warnings": [...]}
    GET    /api/v1/resources/{kind}[?namespace=ns][&showSecrets=true]          -> {"items": [...]}
    GET    /api/v1/resources/{kind}/{namespace}/{name}[?showSecrets=true]      -> the resource with status
    DELETE /api/v1/resources/{kind}/{namespace}/{name}
    GET    /api/v1/contract[?after=<generation>][&timeoutSeconds=0..60]
                                                   the contract; with `after`, held until control publishes
                                                   another generation (200) or the wait ends (304)
    GET    /healthz  /readyz  /metrics

Errors are JSON: {"error": <class>, "reason": ..., "field": ..., "details": [{"field", "reason", "resource"}]};
a refused apply also carries the "warnings" ({"field", "message", "resource"}) found on the way.

Every request but /healthz, /readyz and /metrics needs `Authorization: Bearer <token>`, a known Host, no
foreign Origin and JSON bodies (control/auth.py); secret-looking ConfigMap values are redacted unless
showSecrets=true (control/redaction.py). See docs/security.md.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from control.api.admission import FieldValidation, Refused
from control.auth import Access, guard
from control.contract_board import ContractBoard
from control.redaction import redact
from control.service import ControlService
from core import observability
from core.errors import InvalidResource, NerveError, Unauthorized

SERVICE_KEY = web.AppKey("control_service", ControlService)
BOARD_KEY = web.AppKey("contract_board", ContractBoard)
MAX_CONTRACT_WAIT_S = 60
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
    return web.Response(body=contract.dumps(), content_type="application/json")


def create_app(service: ControlService, access: Access, board: ContractBoard | None = None) -> web.Application:
    # _errors outermost, so the guard's refusals are JSON like every other error.
    app = web.Application(middlewares=[_errors, guard(access)], client_max_size=16 * 1024 * 1024)
    app[SERVICE_KEY] = service
    app[BOARD_KEY] = board or ContractBoard()
    app.router.add_post("/api/v1/apply", _apply)
    app.router.add_get("/api/v1/resources/{kind}", _list)
    app.router.add_get("/api/v1/resources/{kind}/{namespace}/{name}", _get)
    app.router.add_delete("/api/v1/resources/{kind}/{namespace}/{name}", _delete)
    app.router.add_get("/api/v1/contract", _contract)
    observability.add_routes(app)
    return app
