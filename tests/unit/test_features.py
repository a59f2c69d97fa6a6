"""Knative's feature flags (core/features.py): the config-features ConfigMap, the flags that override it,
and how the contract carries them."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.admission import AdmissionSettings, admit
from control.settings import ControlSettings
from core.contract import Contract
from core.errors import InvalidResource
from core.features import Features, from_data, problems, resolve
from core.settings import settings_of


@pytest.mark.parametrize(("data", "expected"), [
    (None, Features()),
    ({}, Features("disabled", "disabled", "allow-same-namespace")),
    ({"transport-encryption": "strict"}, Features(transport_encryption="strict")),
    ({"transport-encryption": "Permissive"}, Features(transport_encryption="permissive")),  # Knative: EqualFold
    ({"authentication-oidc": "enabled", "default-authorization-mode": "deny-all"},
     Features(authentication_oidc="enabled", default_authorization_mode="deny-all")),
    ({"default-authorization-mode": "Allow-All"}, Features(default_authorization_mode="allow-all")),
    ({"_example": "transport-encryption: strict", "delivery-timeout": "enabled"}, Features()),
    ({" transport-encryption ": "strict"}, Features(transport_encryption="strict")),  # Knative trims keys
    ({"transport-encryption": "bogus"}, Features()),  # stored some other way: the default holds
])
def test_flags_from_configmap_data(data: dict[str, str] | None, expected: Features) -> None:
    assert from_data(data) == expected


@pytest.mark.parametrize(("data", "fields"), [
    ({"transport-encryption": "on"}, ["data.transport-encryption"]),
    ({"transport-encryption": "enabled"}, ["data.transport-encryption"]),
    ({"authentication-oidc": "permissive"}, ["data.authentication-oidc"]),
    ({"default-authorization-mode": "disabled", "authentication-oidc": "yes"},
     ["data.default-authorization-mode", "data.authentication-oidc"]),
    ({"transport-encryption": "STRICT", "delivery-timeout": "whatever", "_x": "y"}, []),
])
def test_bad_values_are_named(data: dict[str, str], fields: list[str]) -> None:
    assert [e.path for e in problems(data)] == fields


def test_refusal_names_the_allowed_values() -> None:
    (error,) = problems({"transport-encryption": "on"})
    assert error.reason == "'on' is not a value of transport-encryption: expected one of disabled, permissive, strict"


def test_flags_override_the_configmap_key_by_key() -> None:
    data = {"transport-encryption": "permissive", "authentication-oidc": "enabled"}
    assert resolve(data, {"transport-encryption": "Strict", "authentication-oidc": ""}) == \
        Features(transport_encryption="strict", authentication_oidc="enabled")
    assert resolve(None, {"default-authorization-mode": "allow-all"}) == \
        Features(default_authorization_mode="allow-all")


def test_properties() -> None:
    assert not Features().tls and Features().http_allowed and not Features().oidc
    assert Features("permissive").tls and Features("permissive").http_allowed
    assert Features("strict").tls and not Features("strict").http_allowed
    assert Features(authentication_oidc="enabled").oidc


def test_contract_carries_the_flags() -> None:
    flags = Features("strict", "enabled", "deny-all")
    contract = Contract(3, features=flags)
    loaded = Contract.loads(contract.dumps())
    assert loaded.features == flags
    assert loaded.to_json()["features"] == {"transport-encryption": "strict", "authentication-oidc": "enabled",
                                            "default-authorization-mode": "deny-all"}
    assert not Contract(3).same_content(contract)
    # A contract written before the field existed reads as Knative's defaults.
    assert Contract.loads(b'{"generation": 1, "resources": []}').features == Features()


def _configmap(namespace: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": namespace, "name": name}, "data": data}


def test_admission_refuses_a_bad_config_features() -> None:
    settings = AdmissionSettings("MTChannelBasedBroker")
    with pytest.raises(InvalidResource) as refused:
        admit(_configmap("knative-eventing", "config-features", {"transport-encryption": "tls"}), None, settings)
    assert [e.path for e in refused.value.errors] == ["data.transport-encryption"]
    admit(_configmap("knative-eventing", "config-features", {"transport-encryption": "strict"}), None, settings)
    # The same key in another ConfigMap is none of Nerve's business.
    admit(_configmap("default", "config-features", {"transport-encryption": "tls"}), None, settings)


@pytest.mark.parametrize("name", ["transport_encryption", "authentication_oidc", "default_authorization_mode"])
def test_flag_checks(name: str) -> None:
    (spec,) = settings_of(ControlSettings, name)
    assert spec.problem("") is None
    assert spec.problem("bogus") is not None and "expected one of" in str(spec.problem("bogus"))
