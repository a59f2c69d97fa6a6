"""The store's uids (control/store/sqlite.py `_uid`) are what str(uuid.uuid4()) writes."""

from __future__ import annotations

import re
import uuid

import pytest

from control.store import sqlite


def test_a_uid_is_a_random_version_4_uuid_as_uuid4_prints_it() -> None:
    uids = {sqlite._uid() for _ in range(2000)}
    assert len(uids) == 2000
    for uid in uids:
        parsed = uuid.UUID(uid)
        assert str(parsed) == uid
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uid)
    # Every random bit outside version and variant varies (122 of them).
    ints = [uuid.UUID(u).int for u in uids]
    fixed = (0xF << 76) | (0x3 << 62)
    varying = 0
    for i in range(128):
        if len({(n >> i) & 1 for n in ints}) == 2:
            varying |= 1 << i
    assert varying == ((1 << 128) - 1) & ~fixed


@pytest.mark.parametrize("raw", [bytes(16), b"\xff" * 16, bytes(range(16)), bytes(range(240, 256))])
def test_the_same_bytes_make_the_same_uid_as_uuid4(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite.os, "urandom", lambda n: raw)
    assert sqlite._uid() == str(uuid.UUID(bytes=raw, version=4))
