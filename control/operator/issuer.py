"""The API server's service-account issuer, as the operator's OIDC issuer (authentication-oidc enabled).

On Kubernetes the tokens senders present are service-account tokens the API server issues (a Pod's
projected token, or the TokenRequest API), as Knative's are. So the operator does not sign anything: it
reads the API server's OIDC discovery document (`/.well-known/openid-configuration`, for the `issuer`
the tokens carry) and its public keys (`/openid/v1/jwks`), and puts both into the contract; the ingress
verifies tokens offline with them (ingress/auth.py), never calling the API server per request.

Both are read from the API server itself with control's own credentials, not from the discovery
document's `jwks_uri` (which names the issuer's external address, often not reachable from inside the
cluster). Reading them needs the `system:service-account-issuer-discovery` ClusterRole (bound to every
ServiceAccount by default) or a rule on those two nonResourceURLs (the chart grants one).

The keys are read again every `refresh_s` (the API server may rotate its signing key: a new key first
appears beside the old one in the JWKS); a change triggers a reconcile, which publishes a contract with
the new keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from kubernetes import client

from core.oidc import DISCOVERY_PATH, JWKS_PATH

log = logging.getLogger("nerve.operator.issuer")
RETRY_S = 10.0


class DiscoveryError(Exception):
    """The API server's issuer could not be read; the message says which path and why."""


class ApiServerIssuer:
    """PublishedKeys (core/oidc.py) of the API server's service-account issuer, refreshed in the background."""

    def __init__(self, api_client: client.ApiClient, *, refresh_s: float = 300.0) -> None:
        self._api = api_client
        self._refresh_s = refresh_s
        self._url = ""
        self._jwks: dict[str, Any] = {"keys": []}
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self._url

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def _get(self, path: str, accept: str = "application/json") -> dict[str, Any]:
        params = self._api.param_serialize("GET", path, header_params={"Accept": accept},
                                           auth_settings=["BearerToken"])
        try:
            response = self._api.call_api(*params)
            response.read()
            body: bytes = response.data or b""
        except Exception as exc:  # noqa: BLE001 - connection errors of urllib3, named in the message
            raise DiscoveryError(f"GET {path} on the API server failed: {exc}") from None
        if response.status != 200:
            raise DiscoveryError(f"GET {path} on the API server answered {response.status}: "
                                 f"{body[:300]!r} (control needs the system:service-account-issuer-"
                                 "discovery ClusterRole, or get on that nonResourceURL)")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise DiscoveryError(f"GET {path} on the API server is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise DiscoveryError(f"GET {path} on the API server is not a JSON object")
        return data

    def _read(self) -> tuple[str, dict[str, Any]]:
        issuer = self._get(DISCOVERY_PATH).get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise DiscoveryError(f"{DISCOVERY_PATH} on the API server names no issuer (is "
                                 "--service-account-issuer a URL?)")
        jwks = self._get(JWKS_PATH, "application/jwk-set+json")  # it serves no other type
        if not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
            raise DiscoveryError(f"{JWKS_PATH} on the API server lists no keys")
        return issuer, {"keys": [dict(k) for k in jwks["keys"]]}

    async def refresh(self) -> bool:
        """Read the issuer and keys now; True when they changed. DiscoveryError when they cannot be read
        (the keys read before stay in use)."""
        issuer, jwks = await asyncio.to_thread(self._read)
        if (issuer, jwks) == (self._url, self._jwks):
            return False
        self._url, self._jwks = issuer, jwks
        log.info("service-account issuer %s: %d key(s) (%s)", issuer, len(jwks["keys"]),
                 ", ".join(str(k.get("kid", "")) for k in jwks["keys"]))
        return True

    def start(self, changed: Callable[[], Awaitable[object]]) -> None:
        """Refresh every `refresh_s` in the background, calling `changed()` after a change."""
        async def loop() -> None:
            while True:
                # Until the first read succeeds (RBAC not granted yet, API server restarting), sooner.
                await asyncio.sleep(self._refresh_s if self._jwks["keys"] else min(self._refresh_s, RETRY_S))
                try:
                    if await self.refresh():
                        await changed()
                except DiscoveryError as exc:
                    log.warning("service-account issuer keys not refreshed: %s", exc)
                except Exception:  # the next round tries again
                    log.exception("reconcile after a change of the service-account issuer's keys failed")
        self._task = asyncio.create_task(loop(), name="issuer-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
