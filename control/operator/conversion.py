"""Point the CRDs' conversion at the operator's webhook: Helm installs `crds/` untemplated, so the generated
CRDs name the Service of the documented install without a caBundle (control/crds.py); the operator, once
its webhooks serve, patches each CRD with conversion strategy `Webhook` to its own Service and CA bundle.
Knative's webhook does the same for its CRDs. Idempotent: every replica does it at start."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

from kubernetes import client

from control.crds import crd_kinds
from control.operator.webhooks import CONVERT_PATH

log = logging.getLogger("nerve.operator.conversion")


def converted_crds() -> list[str]:
    """The CRDs whose conversion is the webhook's: those of kinds with older versions."""
    return [kind.resource for kind in crd_kinds() if kind.older_versions]


def service_client_config(namespace: str, service: str, ca_file: Path) -> dict[str, Any]:
    config: dict[str, Any] = {"service": {"namespace": namespace, "name": service, "path": CONVERT_PATH, "port": 443}}
    if ca_file.exists():
        config["caBundle"] = base64.b64encode(ca_file.read_bytes()).decode()
    return config


def patch_conversions(api_client: client.ApiClient, client_config: dict[str, Any]) -> list[str]:
    """Patch every converted CRD's `spec.conversion` to call `client_config` (blocking); returns the CRDs patched."""
    api: Any = client.ApiextensionsV1Api(api_client)
    # A JSON patch replacing `spec.conversion` whole: a clientConfig has a url or a service, never both.
    ops = [{"op": "add", "path": "/spec/conversion", "value": {
        "strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": client_config}}}]
    patched = []
    for name in converted_crds():
        api.patch_custom_resource_definition(name, ops)
        patched.append(name)
    log.info("conversion of %d CRDs through %s", len(patched), client_config.get("url") or client_config.get("service"))
    return patched


async def point_conversions(api_client: client.ApiClient, client_config: dict[str, Any]) -> list[str]:
    return await asyncio.to_thread(patch_conversions, api_client, client_config)
