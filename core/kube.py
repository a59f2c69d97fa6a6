"""What control and sources both need to know of the Kubernetes API, with no client: how a kind's
resource (plural) is spelled, and who a ServiceAccount is to the API server."""

from __future__ import annotations


def guess_plural(kind: str) -> str:
    """Kubernetes' UnsafeGuessKindToResource: `Event` -> events, `Ingress` -> ingresses, `Policy` -> policies."""
    singular = kind.lower()
    if not singular or singular.endswith("endpoints"):
        return singular
    if singular.endswith("s"):
        return singular + "es"
    if singular.endswith("y"):
        return singular[:-1] + "ies"
    return singular + "s"


def service_account_user(namespace: str, name: str) -> str:
    """The user name a ServiceAccount's token authenticates as."""
    return f"system:serviceaccount:{namespace}:{name}"


def service_account_groups(namespace: str) -> list[str]:
    """The groups every ServiceAccount token of `namespace` carries."""
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]


def group_of(api_version: str) -> str:
    """`apps/v1` -> apps, `v1` -> "" (the core group)."""
    return api_version.rpartition("/")[0] if "/" in api_version else ""
