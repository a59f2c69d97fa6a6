"""The CLI's client of the control API: small, synchronous, standard library only."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any


def _query(**params: str | None) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return f"?{urllib.parse.urlencode(given)}" if given else ""


class ApiError(Exception):
    """The API refused a request; `body` is its JSON error."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("reason", f"HTTP {status}"))
        self.status = status
        self.body = body


class Unreachable(Exception):
    pass


class Client:
    def __init__(self, server: str, *, token: str = "", timeout_s: float = 60.0) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._timeout = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", **self._auth()})
        with self._open(request, self._timeout) as response:
            return json.loads(response.read() or b"null")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _open(self, request: urllib.request.Request, timeout: float | None) -> Any:
        """The response, or ApiError with the API's JSON error, or Unreachable saying where it looked."""
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"reason": raw.decode(errors="replace") or exc.reason}
            raise ApiError(exc.code, payload) from None
        except (urllib.error.URLError, OSError) as exc:
            raise Unreachable(
                f"cannot reach the Nerve control API at {self.server} ({getattr(exc, 'reason', exc)}); "
                "is `nerve up` running? (--server / NERVE_SERVER)"
            ) from None

    def apply(self, manifests: list[Any], field_validation: str = "Warn") -> dict[str, Any]:
        """{"items": [{kind, apiVersion, namespace, name, outcome}], "warnings": [{field, message, resource}]}."""
        query = f"?fieldValidation={urllib.parse.quote(field_validation)}"
        result: dict[str, Any] = self._call("POST", f"/api/v1/apply{query}", {"items": manifests})
        return result

    def list_resources(self, kind: str, namespace: str | None, *, show_secrets: bool = False) -> list[dict[str, Any]]:
        query = _query(namespace=namespace, showSecrets="true" if show_secrets else None)
        items: list[dict[str, Any]] = self._call("GET", f"/api/v1/resources/{kind}{query}")["items"]
        return items

    def get(self, kind: str, namespace: str, name: str, *, show_secrets: bool = False) -> dict[str, Any]:
        query = _query(showSecrets="true" if show_secrets else None)
        obj: dict[str, Any] = self._call("GET", f"/api/v1/resources/{kind}/{namespace}/{name}{query}")
        return obj

    def token(self, audience: str, subject: str | None, expires_s: int) -> dict[str, Any]:
        """A JWT signed by Nerve's issuer: {"token", "subject", "audience", "expiresAt"}."""
        body: dict[str, Any] = {"audience": audience, "expiresSeconds": expires_s}
        if subject is not None:
            body["subject"] = subject
        result: dict[str, Any] = self._call("POST", "/api/v1/tokens", body)
        return result

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._call("DELETE", f"/api/v1/resources/{kind}/{namespace}/{name}")

    def logs(self, namespace: str, pod: str, *, container: str | None = None, tail: int | None = None,
             follow: bool = False) -> Iterator[bytes]:
        """A local Pod's output, chunk by chunk as the server streams it (until the Pod ends, with follow)."""
        query = _query(container=container, tailLines=None if tail is None else str(tail),
                       follow="true" if follow else None)
        request = urllib.request.Request(f"{self.server}/api/v1/logs/{namespace}/{pod}{query}", headers=self._auth())
        response = self._open(request, None if follow else self._timeout)
        with response:
            while chunk := response.read1(65536):
                yield chunk
