"""Nerve as its own OIDC issuer (embedded and compose mode): discovery, the JWKS, and tokens on request.

    GET  /.well-known/openid-configuration   open, like /healthz: {"issuer", "jwks_uri", ...}
    GET  /openid/v1/jwks                     open: the public keys ({"keys": [JWK]})
    POST /api/v1/tokens                      the control token required:
                                             {"audience": A, "subject": S?, "expiresSeconds": N?}
                                             -> {"token", "subject", "audience", "expiresAt"}

The key is `<state-dir>/oidc-signing-key.pem` (core/oidc.py), made on first start. A token request with
no subject gets `system:serviceaccount:<namespace>:default`, the namespace read from a Knative audience
(`<group>/<kind>/<namespace>/<name>`), as `kubectl create token default -n <namespace>` would give.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from core import oidc
from core.errors import NerveError

ISSUER_KEY = web.AppKey("oidc_issuer", oidc.Issuer)
MAX_EXPIRES_S = 24 * 3600


class InvalidTokenRequest(NerveError):
    status = 400


def default_subject(audience: str) -> str:
    parts = audience.split("/")
    namespace = parts[2] if len(parts) == 4 and parts[2] else "default"
    return oidc.subject(namespace, "default")


def token_request(body: Any) -> tuple[str, str, int]:
    """(audience, subject, lifetime seconds) from a request body; InvalidTokenRequest naming the field."""
    if not isinstance(body, dict):
        raise InvalidTokenRequest('body must be {"audience": ..., "subject": ..., "expiresSeconds": ...}')
    audience = body.get("audience")
    if not isinstance(audience, str) or not audience.strip():
        raise InvalidTokenRequest("audience is required: the audience of the Broker or channel the token is for "
                                  "(its status.address.audience)", field="audience")
    sub = body.get("subject")
    if sub is not None and (not isinstance(sub, str) or not sub.strip()):
        raise InvalidTokenRequest("subject must be a non-empty string", field="subject")
    expires = body.get("expiresSeconds", oidc.DEFAULT_LIFETIME_S)
    if isinstance(expires, bool) or not isinstance(expires, int) or not 1 <= expires <= MAX_EXPIRES_S:
        raise InvalidTokenRequest(f"expiresSeconds must be a whole number of seconds from 1 to {MAX_EXPIRES_S}",
                                  field="expiresSeconds")
    return audience.strip(), (sub or default_subject(audience.strip())).strip(), expires


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


async def _discovery(request: web.Request) -> web.Response:
    return _json(request.app[ISSUER_KEY].discovery())


async def _jwks(request: web.Request) -> web.Response:
    return _json(request.app[ISSUER_KEY].key.jwks())


async def _token(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise InvalidTokenRequest(f"body is not JSON: {exc}") from None
    audience, sub, lifetime = token_request(body)
    token, expires = request.app[ISSUER_KEY].mint(sub, audience, lifetime)
    return _json({"token": token, "subject": sub, "audience": audience, "expiresAt": int(expires)})


def add_routes(app: web.Application, issuer: oidc.Issuer) -> None:
    app[ISSUER_KEY] = issuer
    app.router.add_get(oidc.DISCOVERY_PATH, _discovery)
    app.router.add_get(oidc.JWKS_PATH, _jwks)
    app.router.add_post("/api/v1/tokens", _token)
