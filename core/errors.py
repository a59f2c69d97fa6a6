"""The error taxonomy shared by every service.

    NerveError
    ├── InvalidEvent            the bytes are not a valid CloudEvent          -> 400
    ├── InvalidResource         a manifest breaks a validation rule           -> 400 / CLI exit 2
    ├── Unauthorized            no or a wrong control-API token                -> 401
    ├── Forbidden               a Host or Origin the control API does not serve -> 403
    ├── NotFound                the named Broker/Channel/resource is unknown   -> 404
    ├── Conflict                a write lost a race (stale resourceVersion) or
    │                           names an object that exists or is being deleted -> 409
    ├── PayloadTooLarge         a request body over the configured limit       -> 413
    ├── UnsupportedMediaType    a control-API body that is not JSON            -> 415
    ├── TTLExhausted            knativebrokerttl reached zero (a reply loop)   -> 400
    └── BackendError            the channel backend could not take the event  -> 503
        └── BackendFull         a bounded in-memory channel is full            -> 503

Each class knows the HTTP status it maps to, so the edge (aiohttp handlers, the CLI) maps typed errors
to answers in one place and the inner code never writes a response.
"""

from __future__ import annotations

from dataclasses import dataclass


class NerveError(Exception):
    """The root of every error Nerve raises on purpose."""

    status: int = 500

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def to_json(self) -> dict[str, str]:
        body = {"error": type(self).__name__, "reason": self.reason}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidEvent(NerveError):
    status = 400


class TTLExhausted(InvalidEvent):
    status = 400


class Unauthorized(NerveError):
    status = 401
    # RFC 9110 §11.6.1: a 401 names the scheme that would succeed, so a client knows what to send.
    challenge = 'Bearer realm="nerve"'


class Forbidden(NerveError):
    status = 403


class NotFound(NerveError):
    status = 404


class UnsupportedMediaType(NerveError):
    status = 415


class Conflict(NerveError):
    """A write that cannot be applied to the object as it now is: Kubernetes' 409.

    An update or status update carrying a resourceVersion that is no longer current (someone wrote in
    between: read again and retry), a create of a name that exists, or a write to an object being deleted.
    """

    status = 409


class PayloadTooLarge(NerveError):
    status = 413


class BackendError(NerveError):
    """The backend did not durably accept an event: the producer must retry."""

    status = 503


class BackendFull(BackendError):
    status = 503


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure: the JSON path of the offending field and why."""

    path: str
    reason: str
    resource: str = ""
    """Which manifest, when a request held several (e.g. "Trigger/ns1/t1")."""

    def __str__(self) -> str:
        where = f"{self.resource}: " if self.resource else ""
        return f"{where}{self.path}: {self.reason}"


class InvalidResource(NerveError):
    """A manifest failed validation; carries every field error found, not just the first."""

    status = 400

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors), field=errors[0].path if errors else None)

    def details(self) -> list[dict[str, str]]:
        return [{"field": e.path, "reason": e.reason, **({"resource": e.resource} if e.resource else {})}
                for e in self.errors]
