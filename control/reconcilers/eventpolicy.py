"""The EventPolicy reconciler, and OIDC's part of every pass (the builders are resources/eventpolicy.py).

Each pass, with the feature flags of that pass:

- every EventPolicy gets its status (`AuthenticationEnabled`, `SubjectsResolved`, `status.from`);
- every Broker's and channel's status, as its own reconciler writes it, gets the audience, `policies`
  and `EventPoliciesReady` (`decorate`, hooked into the pass's Writes, so a status is written once);
- the contract gets, per Broker and channel, the audience and policies its ingress enforces, per
  Trigger, Subscription and source the identity it sends as and the audiences it sends to, and the
  issuer's public keys (`enrich`).
"""

from __future__ import annotations

import dataclasses

from control.reconcilers.resources import eventpolicy as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from core.contract import Egress, OidcConfig, Resource, Source
from core.features import Features
from core.oidc import PublishedKeys


class EventPolicyReconciler:
    kind = "EventPolicy"

    def __init__(self, issuer: PublishedKeys | None = None) -> None:
        self.issuer = issuer
        """The issuer whose keys go into the contract for the ingress: Nerve's own (embedded, compose), or
        the API server's service-account issuer (operator mode, control/operator/issuer.py)."""

    def hook(self, writes: Writes, snapshot: Snapshot, authz: build.Authz) -> None:
        """Every status this pass writes for a Broker or channel carries OIDC's part."""
        writes.decorate = lambda obj, status: build.decorate(obj, status, snapshot, authz)

    async def reconcile_all(self, snapshot: Snapshot, writes: Writes, authz: build.Authz) -> None:
        for policy in snapshot.live(self.kind):
            await writes.status(policy, build.policy_status(policy, snapshot, authz))

    def oidc_config(self, authz: build.Authz) -> OidcConfig | None:
        if not authz.enabled or self.issuer is None:
            return None
        keys = self.issuer.jwks()
        if not keys.get("keys"):
            return None  # not discovered yet: the ingress answers 401 (no issuer keys) until it is
        return OidcConfig(self.issuer.url, keys)

    def enrich(self, resources: list[Resource], sources: list[Source], snapshot: Snapshot,
               authz: build.Authz) -> tuple[list[Resource], list[Source]]:
        """The contract entries with OIDC's fields; unchanged while OIDC is off."""
        if not authz.enabled:
            return resources, sources
        audiences = build.url_audiences(snapshot, authz)

        def egress(e: Egress) -> Egress:
            ref = e.reference
            obj = snapshot.get(ref.kind, ref.namespace, ref.name)
            auth = build.egress_auth(obj, e.destination, e.reply_url, e.egress_config.dead_letter, audiences, authz)
            return dataclasses.replace(e, auth=auth)

        def resource(r: Resource) -> Resource:
            ref = r.reference
            obj = snapshot.get(ref.kind, ref.namespace, ref.name)
            auth = build.ingress_auth(obj, snapshot, authz) if obj is not None else None
            return dataclasses.replace(r, auth=auth, egresses=tuple(egress(e) for e in r.egresses))

        return ([resource(r) for r in resources],
                [dataclasses.replace(s, egress=egress(s.egress)) for s in sources])


def authz_of(features: Features) -> build.Authz:
    """What OIDC's part of the pass reads of the flags in force (core/features.py)."""
    return build.Authz(enabled=features.oidc, default_mode=features.default_authorization_mode)
