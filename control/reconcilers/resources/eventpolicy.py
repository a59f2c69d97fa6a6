"""What OIDC and EventPolicies produce, as pure functions over the pass's snapshot.

- An EventPolicy's status (Knative's eventpolicy_lifecycle.go): `AuthenticationEnabled` (False, reason
  `OIDCAuthenticationDisabled`, while authentication-oidc is off), `SubjectsResolved` (False, reason
  `SubjectsNotResolved`, while a `from` ref names nothing that exists), and `status.from`: every subject
  it admits, refs resolved to their OIDC identity (core/oidc.py).
- An addressable's (Broker, Channel, concrete channels) `status.address.audience`, its `status.policies`
  (the Ready EventPolicies that apply to it, Knative's AppliedEventPolicyRef {name, apiVersion}) and its
  `EventPoliciesReady` condition (False, reason `EventPoliciesNotReady`, naming the ones not Ready; True
  with reason `DefaultAuthorizationMode` when none applies, `OIDCDisabled` while OIDC is off).
- The contract's side (`ingress_auth`, `egress_auth`): the audience and compiled policies an ingress
  enforces, and who each Trigger, Subscription and source sends as and to which audiences.

A policy applies to a concrete channel also when it applies to the generic Channel that owns it: the
Channel's address is its backing channel's, so that is where its events are checked.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from control.api import eventpolicy as api
from control.api import kinds
from control.api.meta import mapping
from control.conditions import cond, with_ready
from control.reconcilers.snapshot import Snapshot
from core import oidc
from core.contract import EgressAuth, IngressAuth, IngressPolicy, TokenMatcher
from core.selector import LabelSelector

ALLOW_SAME_NAMESPACE = "allow-same-namespace"
ALLOW_ALL = "allow-all"
DENY_ALL = "deny-all"
AUTHORIZATION_MODES = (ALLOW_SAME_NAMESPACE, ALLOW_ALL, DENY_ALL)

BROKER_GROUP = "eventing.knative.dev"
CHANNEL_GROUP = "messaging.knative.dev"
ADDRESSABLE_GROUPS = {"Broker": BROKER_GROUP, "Channel": CHANNEL_GROUP, "InMemoryChannel": CHANNEL_GROUP,
                      "KafkaChannel": CHANNEL_GROUP, "NatsJetStreamChannel": CHANNEL_GROUP}
"""The kinds that get an audience and EventPolicies."""
OIDC_DISABLED = ("OIDCDisabled", 'Feature "authentication-oidc" must be enabled to support Authorization')


@dataclass(frozen=True, slots=True)
class Authz:
    """The two feature flags this module reads (config-features: authentication-oidc, default-authorization-mode)."""

    enabled: bool = False
    default_mode: str = ALLOW_SAME_NAMESPACE


def _meta(obj: dict[str, Any]) -> tuple[str, str]:
    return str(obj["metadata"].get("namespace", "")), str(obj["metadata"]["name"])


def backing_kind(obj: dict[str, Any]) -> str:
    """The concrete kind whose ingress takes an addressable's events (a Channel's is its template's)."""
    if obj["kind"] != "Channel":
        return str(obj["kind"])
    template = mapping(mapping(obj.get("spec")).get("channelTemplate"))
    return str(template.get("kind") or mapping(mapping(obj.get("status")).get("channel")).get("kind") or "")


def audience_of(obj: dict[str, Any]) -> str:
    kind = backing_kind(obj)
    ns, name = _meta(obj)
    return oidc.audience(ADDRESSABLE_GROUPS.get(kind, CHANNEL_GROUP), kind, ns, name)


# ------------------------------------------------------------------------------------------- EventPolicy


def _targets(entry: dict[str, Any], kind: str) -> bool:
    group = oidc.group_of(str(entry.get("apiVersion", "")))
    return str(entry.get("kind", "")).lower() == kind.lower() and group.lower() == ADDRESSABLE_GROUPS[kind].lower()


def applies(policy: dict[str, Any], obj: dict[str, Any]) -> bool:
    """Knative's GetEventPoliciesForResource: same namespace; no `to` = every addressable there."""
    if _meta(policy)[0] != _meta(obj)[0] or obj["kind"] not in ADDRESSABLE_GROUPS:
        return False
    to = mapping(policy.get("spec")).get("to") or []
    if not to:
        return True
    name = _meta(obj)[1]
    labels = obj["metadata"].get("labels") or {}
    for entry in to:
        ref, selector = mapping(entry.get("ref")), entry.get("selector")
        if ref and _targets(ref, obj["kind"]) and str(ref.get("name", "")).lower() == name.lower():
            return True
        if isinstance(selector, dict) and _targets(selector, obj["kind"]):
            rest = {k: v for k, v in selector.items() if k not in ("apiVersion", "kind")}
            if LabelSelector.from_json(rest).matches(labels):
                return True
    return False


def resolve_from(policy: dict[str, Any], snapshot: Snapshot) -> tuple[list[str], list[str]]:
    """(subjects, problems): each `from` as the subject it admits; a ref that resolves to nothing is a problem."""
    subjects: list[str] = []
    problems: list[str] = []
    for entry in mapping(policy.get("spec")).get("from") or []:
        if entry.get("sub"):
            subjects.append(str(entry["sub"]))
            continue
        ref = mapping(entry.get("ref"))
        api_version, kind_name = str(ref.get("apiVersion", "")), str(ref.get("kind", ""))
        ns, name = str(ref.get("namespace") or _meta(policy)[0]), str(ref.get("name", ""))
        kind = kinds.for_manifest(api_version, kind_name)
        if kind is None:
            problems.append(f"from ref {api_version}/{kind_name} {ns}/{name}: not a kind Nerve knows")
        elif snapshot.get(kind.kind, ns, name) is None:
            problems.append(f"from ref {kind_name} {ns}/{name} does not exist")
        else:
            subjects.append(oidc.identity(kind.group, kind.kind, ns, name))
    return subjects, problems


def policy_status(policy: dict[str, Any], snapshot: Snapshot, authz: Authz, now: str | None = None) -> dict[str, Any]:
    old = mapping(policy.get("status"))
    out: dict[str, Any] = {"observedGeneration": policy["metadata"].get("generation", 1)}
    if not authz.enabled:
        conditions = [cond("AuthenticationEnabled", False, "OIDCAuthenticationDisabled",
                           'feature "authentication-oidc" is disabled; enable it in ConfigMap '
                           "knative-eventing/config-features"),
                      cond("SubjectsResolved", None)]
        out["conditions"] = with_ready(conditions, old.get("conditions"), now)
        return out
    subjects, problems = resolve_from(policy, snapshot)
    conditions = [cond("AuthenticationEnabled", True)]
    if problems:
        conditions.append(cond("SubjectsResolved", False, "SubjectsNotResolved", "; ".join(problems)))
    else:
        conditions.append(cond("SubjectsResolved", True))
        out["from"] = subjects
    out["conditions"] = with_ready(conditions, old.get("conditions"), now)
    return out


def _ready(status: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


@dataclass(frozen=True, slots=True)
class Applied:
    name: str
    ready: bool
    subjects: tuple[str, ...]
    filters: tuple[dict[str, Any], ...]


def applying(obj: dict[str, Any], snapshot: Snapshot, authz: Authz) -> list[Applied]:
    """The EventPolicies that apply to `obj` (or to the Channel owning it), by name, with their state."""
    owners = [obj, *_owning_channels(obj, snapshot)]
    found: list[Applied] = []
    for policy in sorted(snapshot.live("EventPolicy"), key=lambda p: p["metadata"]["name"]):
        if not any(applies(policy, o) for o in owners):
            continue
        status = policy_status(policy, snapshot, authz, now="-")
        filters = mapping(policy.get("spec")).get("filters") or []
        found.append(Applied(policy["metadata"]["name"], _ready(status), tuple(status.get("from") or ()),
                             tuple(dict(f) for f in filters)))
    return found


def _owning_channels(obj: dict[str, Any], snapshot: Snapshot) -> Iterable[dict[str, Any]]:
    if obj["kind"] == "Channel":
        return []
    ns, name = _meta(obj)
    uids = {r.get("uid") for r in obj["metadata"].get("ownerReferences") or [] if r.get("kind") == "Channel"}
    channel = snapshot.get("Channel", ns, name)
    return [channel] if channel is not None and channel["metadata"].get("uid") in uids else []


# ------------------------------------------------------------------------------------ addressables' status


IDENTITY_CONDITION = "OIDCIdentityCreated"
FLOWS = ("Sequence", "Parallel")


def _flow_audience(status: dict[str, Any], snapshot: Snapshot, authz: Authz) -> dict[str, Any]:
    """A Sequence's or Parallel's address is its first (ingress) channel's: so is its audience (Knative's
    Sequence oidc test)."""
    url = mapping(status.get("address")).get("url")
    audience = url_audiences(snapshot, authz).get(str(url)) if url else None
    if not audience and "audience" not in mapping(status.get("address")):
        return status
    out = copy.deepcopy(status)
    if audience:
        out["address"]["audience"] = audience
    else:
        out["address"].pop("audience", None)
    return out


def with_identity(obj: dict[str, Any], status: dict[str, Any], authz: Authz) -> dict[str, Any]:
    """A sender's status (Trigger, Subscription, source: those whose builder writes OIDCIdentityCreated) with
    OIDC on: `status.auth.serviceAccountName`, the identity its tokens carry, and the condition True."""
    conditions = status.get("conditions") or []
    if not authz.enabled or not any(c.get("type") == IDENTITY_CONDITION for c in conditions):
        return status
    kind = kinds.for_manifest(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if kind is None:
        return status
    out = copy.deepcopy(status)
    out["auth"] = {"serviceAccountName": oidc.service_account_name(kind.group, kind.kind, _meta(obj)[1])}
    for c in out["conditions"]:
        if c.get("type") == IDENTITY_CONDITION:
            c.pop("reason", None)
            c.pop("message", None)
    return out


def decorate(obj: dict[str, Any], status: dict[str, Any], snapshot: Snapshot, authz: Authz,
             now: str | None = None) -> dict[str, Any]:
    """A status as its builder made it, plus what OIDC adds. An addressable's: the audience on each address,
    `policies`, and the EventPoliciesReady condition (with Ready summed again); a sender's: its identity
    (`with_identity`). Idempotent."""
    if obj.get("kind") in FLOWS:
        return _flow_audience(status, snapshot, authz)
    if obj.get("kind") not in ADDRESSABLE_GROUPS or not status.get("conditions"):
        return with_identity(obj, status, authz)
    out = copy.deepcopy(status)
    audience = audience_of(obj) if authz.enabled else ""
    for address in [out.get("address"), *(out.get("addresses") or [])]:
        if isinstance(address, dict) and address.get("url"):
            if audience:
                address["audience"] = audience
            else:
                address.pop("audience", None)
    out.pop("policies", None)
    found = applying(obj, snapshot, authz) if authz.enabled else []
    if not authz.enabled:
        condition = cond("EventPoliciesReady", True, *OIDC_DISABLED)
    elif not found:
        condition = cond("EventPoliciesReady", True, "DefaultAuthorizationMode",
                         f"Default authz mode is {authz.default_mode!r}")
    else:
        unready = [p.name for p in found if not p.ready]
        out["policies"] = [{"name": p.name, "apiVersion": api.API_VERSION} for p in found if p.ready]
        condition = cond("EventPoliciesReady", False, "EventPoliciesNotReady",
                         f"event policies {', '.join(unready)} are not ready") if unready else \
            cond("EventPoliciesReady", True)
    summed = ("Ready", "EventPoliciesReady")
    kept = [c for c in out["conditions"] if c.get("type") not in summed]
    # Transition times: the builder's for its own conditions, the stored ones for the two decided here,
    # so an unchanged status is written once, not again every pass.
    stored = [c for c in mapping(obj.get("status")).get("conditions") or [] if c.get("type") in summed]
    out["conditions"] = with_ready([*kept, condition], [*kept, *stored], now)
    return out


# ------------------------------------------------------------------------------------------- the contract


def _matcher(sub: str) -> TokenMatcher:
    return TokenMatcher(sub[:-1], prefix=True) if sub.endswith("*") else TokenMatcher(sub)


def ingress_auth(obj: dict[str, Any], snapshot: Snapshot, authz: Authz) -> IngressAuth | None:
    """What the ingress enforces for an addressable: None while OIDC is off. The Ready applying policies,
    else the default-authorization-mode as a policy (Knative's Kafka broker compiles it the same way):
    allow-same-namespace admits the namespace's service accounts, allow-all everyone, deny-all nobody."""
    if not authz.enabled:
        return None
    policies = [IngressPolicy(tuple(_matcher(s) for s in p.subjects), p.filters)
                for p in applying(obj, snapshot, authz) if p.ready]
    if not policies:
        namespace = _meta(obj)[0]
        if authz.default_mode == ALLOW_ALL:
            policies = [IngressPolicy((TokenMatcher("", prefix=True),))]
        elif authz.default_mode != DENY_ALL:
            policies = [IngressPolicy((TokenMatcher(f"{oidc.SERVICE_ACCOUNT_PREFIX}:{namespace}:", prefix=True),))]
    return IngressAuth(audience_of(obj), tuple(policies))


def url_audiences(snapshot: Snapshot, authz: Authz) -> dict[str, str]:
    """Every addressable's URL -> its audience: a destination resolved to one of them gets a token for it."""
    if not authz.enabled:
        return {}
    found: dict[str, str] = {}
    for kind in ADDRESSABLE_GROUPS:
        for obj in snapshot.live(kind):
            status = mapping(obj.get("status"))
            # Every address: with transport-encryption a ref resolves to the https one (status.addresses[0]).
            for address in [status.get("address"), *(status.get("addresses") or [])]:
                url = mapping(address).get("url")
                if url and backing_kind(obj):
                    found[str(url)] = audience_of(obj)
    return found


def _explicit(dest: Any) -> str:
    return str(dest.get("audience") or "") if isinstance(dest, dict) else ""


def egress_auth(obj: dict[str, Any] | None, destination: str, reply: str | None, dead_letter: str | None,
                audiences: dict[str, str], authz: Authz) -> EgressAuth | None:
    """Who a Trigger, Subscription or source (`obj`) sends as, and the audience of each place it sends to:
    the Destination's own `audience`, else the audience of the Broker or channel its URL is."""
    if not authz.enabled or obj is None:
        return None
    kind = kinds.for_manifest(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if kind is None:
        return None
    ns, name = _meta(obj)
    spec = mapping(obj.get("spec"))
    target = spec.get("subscriber") if "subscriber" in spec else spec.get("sink")
    dls = mapping(spec.get("delivery")).get("deadLetterSink")

    def of(url: str | None, dest: Any) -> str:
        return (_explicit(dest) or audiences.get(url or "", "")) if url else ""

    account = oidc.service_account_name(kind.group, kind.kind, name)
    return EgressAuth(oidc.subject(ns, account), account, of(destination, target), of(reply, spec.get("reply")),
                      of(dead_letter, dls))

