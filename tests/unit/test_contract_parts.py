"""The contract as ConfigMap parts (core/contract.py): gzip, split, reassembled only when every part is of
the generation the index names, and a mounted directory followed by the FileFeed."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from core.contract import (
    INDEX_KEY,
    LEGACY_KEY,
    Contract,
    Egress,
    Reference,
    Resource,
    from_parts,
    part_key,
    read,
    to_parts,
)
from core.contract_watch import FileFeed


def contract(triggers: int, generation: int = 7) -> Contract:
    egresses = tuple(Egress(uid=f"uid-{i:05d}", reference=Reference(f"uid-{i:05d}", "ns", f"t-{i}", "Trigger"),
                            consumer_group=f"knative-trigger.ns.t-{i}", destination=f"http://svc-{i}.ns.svc/",
                            filter_attributes={"type": f"type-{i}"}) for i in range(triggers))
    broker = Resource(uid="b", reference=Reference("b", "ns", "default", "Broker"), backend="kafka",
                      topic="knative-broker.ns.default", ingress_path="/ns/default", egresses=egresses)
    return Contract(generation, (broker,))


def mount(directory: Path, index: dict[str, object], parts: list[bytes]) -> None:
    """What a kubelet makes of the ConfigMaps: one file per key."""
    directory.mkdir(exist_ok=True)
    for i, part in enumerate(parts):
        (directory / part_key(i)).write_bytes(part)
    (directory / INDEX_KEY).write_bytes(orjson.dumps(index))


def test_a_large_contract_is_split_and_reassembled(tmp_path: Path) -> None:
    original = contract(2000)
    packed = to_parts(original, part_bytes=4096)
    assert len(packed.parts) > 2 and all(len(p) <= 4096 for p in packed.parts)
    mount(tmp_path / "cm", packed.index, list(packed.parts))
    assert read(tmp_path / "cm") == original


def test_parts_of_two_generations_are_refused() -> None:
    old, new = to_parts(contract(2000, 1), 4096), to_parts(contract(2001, 2), 4096)
    with pytest.raises(ValueError, match="another generation"):
        from_parts(new.index, [new.parts[0], *old.parts[1:len(new.parts)]])
    with pytest.raises(ValueError, match="parts"):
        from_parts(new.index, list(new.parts[:-1]))


def test_the_same_contract_packs_to_the_same_bytes() -> None:
    assert to_parts(contract(10)) == to_parts(contract(10))


def test_a_directory_with_only_the_charts_initial_contract_reads_it(tmp_path: Path) -> None:
    (tmp_path / LEGACY_KEY).write_text('{"generation": 0, "resources": []}')
    assert read(tmp_path) == Contract(0)


async def test_the_file_feed_follows_a_mounted_directory_and_keeps_the_last_good_contract(tmp_path: Path) -> None:
    directory = tmp_path / "cm"
    first = to_parts(contract(3, 1), 64)
    mount(directory, first.index, list(first.parts))
    feed = FileFeed(directory, interval_s=0.01)
    assert await feed.changed(-1) == contract(3, 1)
    # The index of generation 2 arrives before its parts: generation 1 stays in force ...
    second = to_parts(contract(4, 2), 64)
    (directory / INDEX_KEY).write_bytes(orjson.dumps(second.index))
    assert await feed.changed(1) is None
    # ... until the parts are there too.
    for i, part in enumerate(second.parts):
        (directory / part_key(i)).write_bytes(part)
    os.utime(directory / INDEX_KEY)
    assert await feed.changed(1) == contract(4, 2)
