"""Who may call the control API: a bearer token, the Host and Origin a request carries, the body's type.

The API changes what the whole broker does (a Trigger can point events anywhere), so every request
must show the token control generated into its state dir (or was given by NERVE_TOKEN). The token alone
does not stop a web page: a browser sends `text/plain` JSON without a preflight and a DNS-rebound name
reaches loopback, so the API also refuses a Host it does not know (rebinding needs a name; IP literals and
localhost are safe), any Origin not allowed by name, and bodies that are not `application/json`.
/healthz, /readyz and /metrics stay open: probes and Prometheus scrape them without credentials.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from core.errors import Forbidden, NerveError, Unauthorized, UnsupportedMediaType
from core.headers import media_type

log = logging.getLogger("nerve.control")

TOKEN_FILE = "token"
# Deny by default: everything but these read-only paths is guarded, so no spelling of an /api/ path
# (`//api/...`, a percent-encoded slash) can slip past a prefix test.
# The OIDC issuer's discovery document and public keys are public by design (a verifier fetches them).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/.well-known/openid-configuration", "/openid/v1/jwks"})
JSON_TYPES = frozenset({"application/json"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def secure_dir(path: Path) -> None:
    """Create the state dir 0700, and tighten one left open by an older Nerve (never a shared sticky dir
    such as /tmp, which is not Nerve's to change)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if stat.S_IMODE(mode) & 0o077 and not mode & stat.S_ISVTX:
        try:
            path.chmod(0o700)
        except PermissionError:
            log.warning("cannot restrict %s to its owner (mode %o)", path, stat.S_IMODE(mode))


def new_token() -> str:
    """A random URL-safe token that never starts with "-": one that did would be read as an option by
    `--token $(cat token)` or `--control-token $(cat token)` (1 in 64 of token_urlsafe's)."""
    while (token := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return token


def load_or_create_token(state_dir: Path, given: str = "") -> str:
    """The API token: `given` (NERVE_TOKEN) when set, else `<state_dir>/token`, generated on first start
    with mode 0600, as a client reads a kubeconfig."""
    if given.strip():
        return given.strip()
    secure_dir(state_dir)
    path = state_dir / TOKEN_FILE
    try:
        # O_EXCL: two processes starting on one state dir agree on the first token written.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        token = path.read_text().strip()
        if not token:
            raise NerveError(f"{path} is empty: delete it to have a new token generated") from None
        return token
    token = new_token()
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    log.info("control API token written to %s", path)
    return token


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip().lower() for n in text.split(",") if n.strip())


@dataclass(frozen=True, slots=True)
class Access:
    """What the API accepts; `hosts` and `origins` are the comma-separated NERVE_ALLOWED_* settings."""

    token: str
    hosts: str = ""
    origins: str = ""

    def host_problem(self, host: str | None) -> str | None:
        if not host:
            return "the request has no Host header"
        allowed = _names(self.hosts)
        if "*" in allowed:
            return None
        name = host.lower()
        if name.startswith("["):  # [::1]:8081
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:
            name = name.partition(":")[0]
        try:
            ipaddress.ip_address(name)
            return None  # an address literal cannot be rebound to another host by DNS
        except ValueError:
            pass
        if name in ("localhost", *allowed) or name.endswith(".localhost"):
            return None
        return (f"Host {host!r} is not one this API answers to (a DNS-rebinding guard); "
                "add the name to --allowed-hosts / NERVE_ALLOWED_HOSTS")

    def origin_problem(self, origin: str | None) -> str | None:
        if origin is None or origin.lower().rstrip("/") in _names(self.origins):
            return None
        return (f"Origin {origin!r} is not allowed to call the control API; "
                "add it to --allowed-origins / NERVE_ALLOWED_ORIGINS")

    def token_problem(self, authorization: str | None) -> str | None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return None
        what = "no bearer token" if not authorization else "a wrong bearer token"
        return (f"the control API needs its token and the request carried {what}: send "
                "'Authorization: Bearer <token>'; the nerve CLI reads .nerve/token, --token-file or "
                "--token / NERVE_TOKEN")


def _refusal(access: Access, request: web.Request) -> NerveError | None:
    problem = access.host_problem(request.headers.get("Host")) or access.origin_problem(
        request.headers.get("Origin"))
    if problem:
        return Forbidden(problem)
    problem = access.token_problem(request.headers.get("Authorization"))
    if problem:
        return Unauthorized(problem)
    media = media_type(request.headers.get("Content-Type"))
    if request.method in _BODY_METHODS and media not in JSON_TYPES:
        return UnsupportedMediaType(
            f"{f'Content-Type {media!r}' if media else 'no Content-Type'}: the control API takes application/json "
            "bodies",
            field="Content-Type")
    return None


def guard(access: Access) -> Middleware:
    """Middleware refusing a request (all but OPEN_PATHS) that fails any check, in the order a browser attack
    meets them: Host and Origin (403), token (401), body type (415). NerveErrors become JSON in control.server."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            refusal = _refusal(access, request)
            if refusal is not None:
                # One debug line, values repr-escaped (a %0A in a path cannot forge a log line); never the token.
                log.debug("refused %s %r: %d %s", request.method, request.path, refusal.status,
                          type(refusal).__name__)
                raise refusal
        return await handler(request)

    return middleware
