"""The data-plane contract as ConfigMaps the data plane mounts (the chart's `contract.from: configmap`).

The layout is core/contract.py's (`to_parts`): the contract gzipped into `binaryData`, split into parts of
at most PART_BYTES, part 0 and the index in the ConfigMap `<name>`, part i in `<name>-i`. Knative keeps
its contract in one ConfigMap, so the 1 MiB object limit caps it (about 1,200 Triggers); this has no such
ceiling, a 10,000-Trigger contract is a couple of parts.

A write goes parts first, the index last: until the index names the new generation, readers keep the old
one (its parts may be partly overwritten meanwhile, which the index's digest catches: the reader keeps the
last good contract and reads again). Parts a smaller contract no longer needs are deleted after the index.
The ConfigMap `<name>` is patched, not replaced, so the labels and annotations Helm put on it stay.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from core.contract import INDEX_KEY, LEGACY_KEY, PART_BYTES, Contract, from_parts, part_key, to_parts

log = logging.getLogger("nerve.operator.contract")
T = TypeVar("T")
PART_LABEL = "nerve.dev/contract-part-of"


def part_name(name: str, index: int) -> str:
    return name if index == 0 else f"{name}-{index}"


class ContractConfigMaps:
    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, *,
                 part_bytes: int = PART_BYTES) -> None:
        self._api: Any = client.CoreV1Api(api_client)  # Any: plain dict bodies (binaryData as base64)
        self.namespace = namespace
        self.name = name
        self._part_bytes = part_bytes
        self._parts_written: int | None = None

    async def read(self) -> Contract | None:
        """The contract the ConfigMaps hold now (None: none written yet), e.g. a new leader's starting
        generation, so generations keep increasing across leaders."""
        return await asyncio.to_thread(self._read)

    async def write(self, contract: Contract) -> None:
        await asyncio.to_thread(self._write, contract)

    # ------------------------------------------------------------------------------ blocking, in a thread

    def _get(self, index: int) -> Any | None:
        try:
            return self._api.read_namespaced_config_map(part_name(self.name, index), self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _read(self) -> Contract | None:
        head = self._get(0)
        if head is None:
            return None
        data = head.data or {}
        if INDEX_KEY not in data:
            return Contract.loads(data[LEGACY_KEY].encode()) if LEGACY_KEY in data else None
        index = orjson.loads(data[INDEX_KEY])
        parts: list[bytes] = []
        for i in range(int(index["parts"])):
            cm = head if i == 0 else self._get(i)
            encoded = ((cm.binary_data or {}) if cm is not None else {}).get(part_key(i))
            if encoded is None:
                raise ValueError(f"ConfigMap {part_name(self.name, i)} lacks {part_key(i)}")
            parts.append(base64.b64decode(encoded))
        self._parts_written = int(index["parts"])
        return from_parts(index, parts)

    def _write(self, contract: Contract) -> None:
        packed = to_parts(contract, self._part_bytes)
        count = len(packed.parts)
        if self._parts_written is None:
            previous = self._get(0)
            index = ((previous.data or {}).get(INDEX_KEY) if previous is not None else None)
            self._parts_written = int(orjson.loads(index)["parts"]) if index else 1
        for i in range(count - 1, 0, -1):
            self._upsert(i, {"binaryData": {part_key(i): _b64(packed.parts[i])}})
        # The index last; the chart's initial `contract.json` goes (a reader would prefer the index anyway).
        self._upsert(0, {"data": {INDEX_KEY: orjson.dumps(packed.index).decode(), LEGACY_KEY: None},
                         "binaryData": {part_key(0): _b64(packed.parts[0])}})
        for i in range(count, self._parts_written):
            _ignore_missing(self._api.delete_namespaced_config_map, part_name(self.name, i), self.namespace)
        self._parts_written = count
        log.info("contract generation %d written to ConfigMap %s/%s (%d bytes gzipped, %d part(s))",
                 contract.generation, self.namespace, self.name, packed.index["bytes"], count)

    def _upsert(self, index: int, patch: dict[str, Any]) -> None:
        name = part_name(self.name, index)
        try:
            self._api.patch_namespaced_config_map(name, self.namespace, patch)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        labels = {PART_LABEL: self.name, "app.kubernetes.io/managed-by": "nerve-control"}
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
                "data": {k: v for k, v in (patch.get("data") or {}).items() if v is not None},
                "binaryData": patch.get("binaryData") or {}}
        self._api.create_namespaced_config_map(self.namespace, body)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _ignore_missing(call: Callable[..., T], *args: Any) -> None:
    try:
        call(*args)
    except ApiException as exc:
        if exc.status != 404:
            raise
