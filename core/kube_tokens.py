"""Tokens for Nerve's senders in Kubernetes mode: the API server's TokenRequest API, as Knative's are.

A Trigger, Subscription or source sends as its OIDC ServiceAccount (`<name>-oidc-<group>-<kind>`, which
the operator creates, owned by the object: control/operator/service_accounts.py). The contract names
the subject, `system:serviceaccount:<namespace>:<account>`; the dispatcher and the sources ask

    POST /api/v1/namespaces/<namespace>/serviceaccounts/<account>/token
    {"spec": {"audiences": [<target's audience>], "expirationSeconds": 3600}}

and send the token until `REFRESH_MARGIN_S` before it expires (core/oidc.py's CachedTokens). The token is
signed by the API server, so the receiving ingress verifies it with the issuer keys the contract carries,
and any other receiver with the API server's JWKS or a TokenReview. It needs `create` on
`serviceaccounts/token` (the chart grants it to the dispatcher's and sources' ServiceAccounts).

`--token-source` selects where senders' tokens come from (`TokenSettings`, defined once here):
`control` (Nerve's own issuer, through control's API: compose) or `kubernetes` (this module).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.oidc import DEFAULT_LIFETIME_S, CachedTokens, TokenSource, TokenUnavailable, control_tokens, namespace_of
from core.settings import setting

TOKEN_SOURCES = ("control", "kubernetes")


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Where the dispatcher and the sources get the OIDC tokens they send (authentication-oidc)."""

    token_source: str = setting(
        "control", "--token-source", "NERVE_TOKEN_SOURCE",
        "Where senders' OIDC tokens come from: `control` (Nerve's issuer, POST /api/v1/tokens at --control-url) "
        "or `kubernetes` (the API server's TokenRequest for each Trigger's, Subscription's or source's "
        "ServiceAccount; needs create on serviceaccounts/token).", choices=TOKEN_SOURCES)
    token_kubeconfig: str = setting(
        "", "--token-kubeconfig", "NERVE_TOKEN_KUBECONFIG",
        "With --token-source kubernetes: the kubeconfig to ask TokenRequests with; empty: in a Pod its "
        "ServiceAccount (in-cluster), elsewhere kubectl's ($KUBECONFIG, else ~/.kube/config).")


def account_of(sub: str) -> tuple[str, str]:
    """(namespace, ServiceAccount) of a `system:serviceaccount:<ns>:<name>` subject; TokenUnavailable else."""
    namespace = namespace_of(sub)
    if namespace is None:
        raise TokenUnavailable(f"subject {sub!r} is not a ServiceAccount's (system:serviceaccount:<ns>:<name>): "
                               "the TokenRequest API issues tokens for ServiceAccounts only")
    return namespace, sub.rsplit(":", 1)[1]


def _api_client(kubeconfig: str) -> Any:
    # Imported here: only Kubernetes mode loads the official client.
    from kubernetes import client, config

    configuration = client.Configuration()
    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(configuration)  # type: ignore[no-untyped-call]
    else:
        path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(
            Path.home() / ".kube" / "config")
        config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def kubernetes_tokens(kubeconfig: str = "", *, lifetime_s: int = DEFAULT_LIFETIME_S,
                      api_client: Any = None) -> CachedTokens:
    """Tokens from the TokenRequest API, cached until near expiry. The client is made on first use, so a
    service whose senders need no token never reads a kubeconfig."""
    made: list[Any] = [api_client] if api_client is not None else []

    def request(sub: str, aud: str) -> tuple[str, float]:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        namespace, account = account_of(sub)
        try:
            if not made:
                made.append(_api_client(kubeconfig))
            core: Any = client.CoreV1Api(made[0])
            status = core.create_namespaced_service_account_token(
                account, namespace, {"spec": {"audiences": [aud], "expirationSeconds": lifetime_s}}).status
        except ApiException as exc:
            raise TokenUnavailable(f"TokenRequest for ServiceAccount {namespace}/{account} answered {exc.status}: "
                                   f"{exc.reason}") from None
        except Exception as exc:  # noqa: BLE001 - kubeconfig or connection errors, named
            raise TokenUnavailable(f"TokenRequest for ServiceAccount {namespace}/{account} failed: {exc}") from None
        return str(status.token), status.expiration_timestamp.timestamp()

    async def mint(sub: str, aud: str) -> tuple[str, float]:
        return await asyncio.to_thread(request, sub, aud)

    return CachedTokens(mint)


def sender_tokens(settings: TokenSettings, control_url: str, control_token: str) -> TokenSource | None:
    """The token source `--token-source` selects; None when there is none (control tokens without a
    control URL): senders then send no token."""
    if settings.token_source == "kubernetes":
        return kubernetes_tokens(settings.token_kubeconfig)
    if control_url:
        return control_tokens(control_url, control_token)
    return None
