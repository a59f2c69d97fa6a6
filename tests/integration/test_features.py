"""Knative's config-features ConfigMap as a user applies it: bad values refused naming the key, good ones
in the contract the data plane follows, `nerve up` flags winning over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.contract import read
from core.features import Features
from tests.support.stack import Stack, running_stack


def _features(data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": "knative-eventing", "name": "config-features"}, "data": data}


async def test_bad_value_refused_with_field_and_allowed_values(stack: Stack) -> None:
    async with stack.session.post(f"{stack.api}/api/v1/apply",
                                  json={"items": [_features({"authentication-oidc": "yes"})]}) as r:
        assert r.status == 400
        body = await r.json()
    (detail,) = body["details"]
    assert detail["field"] == "data.authentication-oidc"
    assert detail["reason"] == "'yes' is not a value of authentication-oidc: expected one of disabled, enabled"
    async with stack.session.get(f"{stack.api}/api/v1/resources/configmaps?namespace=knative-eventing") as r:
        assert (await r.json())["items"] == []


async def test_applied_flags_reach_the_contract(stack: Stack) -> None:
    path = stack.nerve.settings.state_dir / "contract.json"
    assert read(path).features == Features()
    await stack.apply(_features({"authentication-oidc": "Enabled", "default-authorization-mode": "deny-all",
                                 "delivery-timeout": "enabled"}))
    assert read(path).features == Features(authentication_oidc="enabled", default_authorization_mode="deny-all")


async def test_up_flags_override_the_configmap(tmp_path: Path) -> None:
    async with running_stack(tmp_path, authentication_oidc="disabled", default_authorization_mode="allow-all") as stack:
        await stack.apply(_features({"authentication-oidc": "enabled", "default-authorization-mode": "deny-all"}))
        assert read(tmp_path / "contract.json").features == Features(default_authorization_mode="allow-all")
