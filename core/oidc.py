"""OIDC as Knative names it: audiences, workload identities, tokens minted and verified.

Names (Knative's pkg/auth):

- the **audience** of an addressable is `<group>/<kind>/<namespace>/<name>`, lower-cased
  (`eventing.knative.dev/broker/ns/default`);
- a Trigger, Subscription or source sends as its **OIDC service account**, named
  `kmeta.ChildName(<name>, "-oidc-<group>-<kind>")` lower-cased, so its token's subject is
  `system:serviceaccount:<namespace>:<name>-oidc-<group>-<kind>`.

In embedded and compose mode Nerve is its own issuer: control keeps an RSA key in its state dir
(`SigningKey`), serves the public half as a JWKS, and signs tokens (`Issuer`). The data plane only
verifies (`Verifier`, built from the JWKS the contract carries), so an ingress never holds the private
key. Tokens are RS256 JWTs through PyJWT (with `cryptography`): RSA verification is the cheap side of
RSA, and it is what a Kubernetes API server issues for service-account tokens too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ALGORITHM = "RS256"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount"
KEY_FILE = "oidc-signing-key.pem"
DEFAULT_LIFETIME_S = 3600
"""Knative's token lifetime (pkg/auth/token_provider.go: one hour)."""
REFRESH_MARGIN_S = 300
"""A cached token is replaced this long before it expires (Knative's 5-minute buffer)."""
_LONGEST_NAME = 63
_MD5_LEN = 32


def audience(group: str, kind: str, namespace: str, name: str) -> str:
    """Knative's `auth.GetAudience`: `<group>/<kind>/<namespace>/<name>`, lower-cased."""
    return f"{group}/{kind}/{namespace}/{name}".lower()


def group_of(api_version: str) -> str:
    """`eventing.knative.dev/v1` -> `eventing.knative.dev`; `v1` -> ``."""
    return api_version.rpartition("/")[0]


def _child_name(parent: str, suffix: str) -> str:
    # knative.dev/pkg/kmeta.ChildName: parent + suffix, the parent shortened and hashed past 63 characters.
    if len(parent) + len(suffix) <= _LONGEST_NAME:
        return parent + suffix
    head = _LONGEST_NAME - len(suffix) - _MD5_LEN
    if head <= 0:
        return hashlib.md5((parent + suffix).encode(), usedforsecurity=False).hexdigest()
    return f"{parent[:head]}{hashlib.md5(parent.encode(), usedforsecurity=False).hexdigest()}{suffix}"


def service_account_name(group: str, kind: str, name: str) -> str:
    """Knative's `GetOIDCServiceAccountNameForResource`: `<name>-oidc-<group>-<kind>`, lower-cased."""
    return _child_name(name, f"-oidc-{group}-{kind}").lower()


def subject(namespace: str, account: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}:{namespace}:{account}"


def identity(group: str, kind: str, namespace: str, name: str) -> str:
    """The token subject a Trigger, Subscription or source sends with."""
    return subject(namespace, service_account_name(group, kind, name))


def namespace_of(sub: str) -> str | None:
    """The namespace of a `system:serviceaccount:<ns>:<name>` subject, else None."""
    parts = sub.split(":")
    if len(parts) == 4 and f"{parts[0]}:{parts[1]}" == SERVICE_ACCOUNT_PREFIX and parts[2]:
        return parts[2]
    return None


# ------------------------------------------------------------------------------------------ verification


class TokenRejected(Exception):
    """Why a request's token does not authenticate it: `code` is RFC 6750's error, `reason` for humans."""

    def __init__(self, reason: str, code: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    audience: tuple[str, ...]
    issuer: str
    expires: float


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; TokenRejected when there is none."""
    if not authorization:
        raise TokenRejected("the request carries no token: send 'Authorization: Bearer <JWT>' with the "
                            "target's audience", code="invalid_request")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected("the Authorization header is not 'Bearer <JWT>'", code="invalid_request")
    return token.strip()


class Verifier:
    """Checks a JWT against one issuer's public keys: signature, `iss`, `aud`, `exp`, `sub`.

    A verified token is remembered (by its bytes and the audience asked for) until it expires: producers
    reuse one token for many events, and the signature check is the costly part. The cache is bounded
    and belongs to this verifier, so new keys (a new contract) start with an empty one.
    """

    def __init__(self, issuer: str, jwks: Mapping[str, Any], *, leeway_s: float = 0.0, cache_size: int = 4096,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self._keys = {str(k.get("kid", "")): jwt.PyJWK.from_dict(dict(k), ALGORITHM) for k in jwks.get("keys") or []}
        self._leeway = leeway_s
        self._cache: dict[tuple[str, str], Claims] = {}
        self._size = cache_size
        self._clock = clock

    def verify(self, token: str, audience: str) -> Claims:
        key = (token, audience)
        claims = self._cache.get(key)
        if claims is not None:
            if claims.expires + self._leeway > self._clock():
                return claims
            del self._cache[key]
        claims = self._verify(token, audience)
        if len(self._cache) >= self._size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = claims
        return claims

    def _key_for(self, token: str) -> Any:
        try:
            kid = str(jwt.get_unverified_header(token).get("kid", ""))
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"the token is not a JWT: {exc}") from None
        key = self._keys.get(kid)
        if key is None:
            raise TokenRejected(f"the token is signed with key {kid!r}, which issuer {self.issuer} does not publish")
        return key.key

    def _verify(self, token: str, audience: str) -> Claims:
        # One published key (Nerve's own issuer): no need to read the header first (it costs more than the
        # RSA check); a token signed with another key then fails its signature and is looked at again.
        only = next(iter(self._keys.values())).key if len(self._keys) == 1 else None
        try:
            payload = jwt.decode(
                token, only if only is not None else self._key_for(token), algorithms=[ALGORITHM], audience=audience,
                issuer=self.issuer, leeway=self._leeway, options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(f"the token is not for audience {audience!r}") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected(f"the token was not issued by {self.issuer}") from None
        except jwt.InvalidSignatureError:
            if only is not None:
                self._key_for(token)  # says so when the token names a key this issuer does not publish
            raise TokenRejected("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"the token has no {exc.claim!r} claim") from None
        except jwt.DecodeError as exc:
            raise TokenRejected(f"the token is not a JWT: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"the token is invalid: {exc}") from None
        aud = payload["aud"]
        return Claims(str(payload["sub"]), tuple(aud) if isinstance(aud, list) else (str(aud),),
                      str(payload["iss"]), float(payload["exp"]))


# ------------------------------------------------------------------------------------------------ issuing


class SigningKey:
    """An RSA key and its key id (a thumbprint of the public key, so every reader agrees on it)."""

    def __init__(self, private: rsa.RSAPrivateKey) -> None:
        self._private = private
        self.public_jwk: dict[str, Any] = {**jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True),
                                           "use": "sig", "alg": ALGORITHM}
        der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = hashlib.sha256(der).hexdigest()[:16]
        self.public_jwk["kid"] = self.kid

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def load_or_create(cls, state_dir: Path) -> SigningKey:
        """`<state_dir>/oidc-signing-key.pem` (mode 0600), generated on first use; two processes starting on
        one state dir agree on the first key written (O_EXCL)."""
        path = state_dir / KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, rsa.RSAPrivateKey):
                raise ValueError(f"{path} holds no RSA private key; delete it to have one generated") from None
            return cls(private)
        key = cls.generate()
        with os.fdopen(fd, "wb") as out:
            out.write(key._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self.public_jwk)]}

    def sign(self, payload: Mapping[str, Any]) -> str:
        return jwt.encode(dict(payload), self._private, algorithm=ALGORITHM, headers={"kid": self.kid})


class Issuer:
    """Signs tokens for producers (`nerve token`) and for Nerve's own senders (dispatcher, sources)."""

    def __init__(self, key: SigningKey, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.url = url
        """The `iss` claim: control's URL, where /.well-known/openid-configuration is served."""
        self._clock = clock

    def mint(self, sub: str, aud: str, lifetime_s: float = DEFAULT_LIFETIME_S) -> tuple[str, float]:
        """A token and its expiry (epoch seconds)."""
        now = self._clock()
        expires = now + lifetime_s
        token = self.key.sign({"iss": self.url, "sub": sub, "aud": aud, "iat": int(now), "nbf": int(now),
                               "exp": int(expires), "jti": uuid.uuid4().hex})
        return token, float(int(expires))

    def jwks(self) -> dict[str, Any]:
        """The public keys verifiers trust (PublishedKeys)."""
        return self.key.jwks()

    def discovery(self) -> dict[str, Any]:
        """/.well-known/openid-configuration, as a Kubernetes API server serves its own."""
        return {"issuer": self.url, "jwks_uri": f"{self.url.rstrip('/')}{JWKS_PATH}",
                "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [ALGORITHM]}


class PublishedKeys(Protocol):
    """An issuer as verifiers see it: its `iss` and its public keys (a JWKS). Nerve's own `Issuer`, or, in
    Kubernetes mode, the API server's service-account issuer as control discovered it."""

    @property
    def url(self) -> str: ...

    def jwks(self) -> dict[str, Any]: ...


DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
"""Where control serves the public keys: the path a Kubernetes API server uses."""


# ------------------------------------------------------------------------------------- tokens for senders


class TokenUnavailable(Exception):
    """No token could be had (control unreachable, or it refused): the delivery attempt fails and is retried."""


class TokenSource(Protocol):
    """Where a sender gets a token for (subject, audience); TokenUnavailable when it cannot."""

    async def token(self, sub: str, aud: str) -> str: ...


class CachedTokens:
    """Tokens from `mint(sub, aud) -> (token, expires)`, each kept until `REFRESH_MARGIN_S` before it expires."""

    def __init__(self, mint: Callable[[str, str], Any], *, clock: Callable[[], float] = time.time) -> None:
        self._mint = mint
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}

    async def token(self, sub: str, aud: str) -> str:
        cached = self._cache.get((sub, aud))
        if cached is not None and cached[1] - REFRESH_MARGIN_S > self._clock():
            return cached[0]
        made = self._mint(sub, aud)
        if asyncio.iscoroutine(made):
            made = await made
        token, expires = made
        self._cache[(sub, aud)] = (token, expires)
        return str(token)


def local_tokens(issuer: Issuer) -> CachedTokens:
    """Tokens signed in this process (`nerve up`, where control's key is at hand)."""
    return CachedTokens(lambda sub, aud: issuer.mint(sub, aud))


def control_tokens(control_url: str, control_token: str, *, timeout_s: float = 10.0) -> CachedTokens:
    """Tokens asked of control's API (`POST /api/v1/tokens` with the control token): a dispatcher or sources
    service of its own (compose) never holds the signing key, as a pod asks the API server's TokenRequest."""
    url = f"{control_url.rstrip('/')}/api/v1/tokens"

    async def mint(sub: str, aud: str) -> tuple[str, float]:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session, \
                    session.post(url, json={"audience": aud, "subject": sub},
                                 headers={"Authorization": f"Bearer {control_token}"}) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    raise TokenUnavailable(f"control answered {response.status}: {body.get('reason', body)}")
                return str(body["token"]), float(body["expiresAt"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            raise TokenUnavailable(f"cannot get a token from {url}: {exc}") from None

    return CachedTokens(mint)
