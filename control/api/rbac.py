"""RBAC kinds Knative's walkthroughs apply before a source: ServiceAccount, Role, RoleBinding, ClusterRole,
ClusterRoleBinding (the ApiServerSource seed grants its `serviceAccountName` get/list/watch on events).

Nerve stores them as they are, so those files apply unchanged, and says at apply time that they grant
nothing: embedded Nerve has no RBAC, an ApiServerSource sees every kind Nerve stores whatever its
ServiceAccount may do. On Kubernetes they are Kubernetes' business.
"""

from __future__ import annotations

from typing import Any

from control.api import schema
from control.api.schema import OPEN, FieldNotice

API_VERSION = "rbac.authorization.k8s.io/v1"
SCHEMA = schema.resource(OPEN, rules=OPEN, roleRef=OPEN, subjects=OPEN, aggregationRule=OPEN, secrets=OPEN,
                         imagePullSecrets=OPEN, automountServiceAccountToken=OPEN)


def notices_rbac(obj: dict[str, Any]) -> list[FieldNotice]:
    return [FieldNotice("kind", f"{obj.get('kind')} is stored but grants nothing: embedded Nerve has no RBAC, so "
                                "an ApiServerSource sees every kind Nerve stores whatever its serviceAccountName "
                                "may do")]
