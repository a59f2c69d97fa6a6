"""The ingress's OIDC and EventPolicy step (authentication-oidc enabled): 401 without a valid token, 403
when no policy lets the sender (or this event) in.

Run after the request parsed and its resource was found, before anything is stored, as Knative's broker
ingress does (pkg/broker/ingress/ingress_handler.go, pkg/auth/verifier.go). A resource whose contract
entry has no `ingress.audience` takes events without a token (OIDC off for it). Otherwise:

- the token (`Authorization: Bearer <JWT>`) must verify against the issuer's keys in the contract, be
  for the resource's audience, and not have expired: else **401** with a `WWW-Authenticate: Bearer`
  challenge naming the reason (RFC 6750);
- one of the resource's policies must match the token's subject (exact, or a prefix for a `*` subject)
  and every event of the request must pass that policy's filters: else **403**. Control compiles the
  `default-authorization-mode` into the policies when no EventPolicy applies, so here an empty list means
  nobody may send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.contract import Contract, IngressAuth, IngressPolicy, Resource
from core.errors import Forbidden, Unauthorized
from core.events import Event
from core.filters import EventFilter, compile_trigger_filter
from core.oidc import TokenRejected, Verifier, bearer


class TokenRefused(Unauthorized):
    """401: no token, or one that does not authenticate the request for this resource."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason, field="Authorization")
        self.code = code

    @property
    def challenge(self) -> str:  # type: ignore[override]
        # RFC 6750 §3: the error code and a description the client can act on (no quotes in it).
        text = self.reason.replace('"', "'")
        return f'Bearer realm="nerve", error="{self.code}", error_description="{text}"'


class NotAllowed(Forbidden):
    """403: the sender is authenticated, but no EventPolicy of the resource lets it (or this event) in."""


@dataclass(frozen=True, slots=True)
class _Policy:
    policy: IngressPolicy
    filters: tuple[EventFilter, ...]

    def admits(self, sub: str) -> bool:
        return any(m.matches(sub) for m in self.policy.matchers)

    def passes(self, event: Event) -> bool:
        return all(f.matches(event.attributes) for f in self.filters)


def _compile(policy: IngressPolicy) -> _Policy:
    # Admission validated every filter; the list is ANDed, as a Trigger's is.
    return _Policy(policy, (compile_trigger_filter(None, list(policy.filters)),) if policy.filters else ())


class Authenticator:
    """The verifier and compiled policies of one contract generation, swapped whole by `apply`."""

    def __init__(self) -> None:
        self._verifier: Verifier | None = None
        self._keys: tuple[str, Mapping[str, object]] | None = None
        self._policies: dict[str, tuple[IngressAuth, tuple[_Policy, ...]]] = {}
        """By ingress path: the resource's auth entry and its policies, compiled once per contract."""

    def apply(self, contract: Contract) -> None:
        oidc = contract.oidc
        if oidc is None:
            self._verifier, self._keys = None, None
        elif self._keys != (oidc.issuer, oidc.jwks):  # same keys: keep the verifier and its cache
            self._verifier, self._keys = Verifier(oidc.issuer, oidc.jwks), (oidc.issuer, oidc.jwks)
        self._policies = {r.ingress_path: (r.auth, tuple(_compile(p) for p in r.auth.policies))
                          for r in contract.resources if r.auth is not None}

    def check(self, resource: Resource, headers: Mapping[str, str], events: Sequence[Event]) -> None:
        """Raises TokenRefused (401) or NotAllowed (403); returns when the request may be stored."""
        auth = resource.auth
        if auth is None:
            return
        verifier = self._verifier
        if verifier is None:
            raise TokenRefused("OIDC is on for this resource but the ingress has no issuer keys yet", "invalid_token")
        try:
            claims = verifier.verify(bearer(headers.get("Authorization")), auth.audience)
        except TokenRejected as exc:
            raise TokenRefused(exc.reason, exc.code) from None
        compiled = self._policies.get(resource.ingress_path)
        if compiled is None or compiled[0] is not auth:
            compiled = self._policies[resource.ingress_path] = (auth, tuple(_compile(p) for p in auth.policies))
        policies = compiled[1]
        admitting = [p for p in policies if p.admits(claims.subject)]
        if not admitting:
            raise NotAllowed(f"subject {claims.subject!r} is not allowed to send here: no EventPolicy "
                             "admits it (or the default-authorization-mode denies it)")
        for event in events:
            if not any(p.passes(event) for p in admitting):
                raise NotAllowed(f"event {event.id!r} of type {event.type!r} does not match the filters of any "
                                 f"EventPolicy admitting subject {claims.subject!r}")
