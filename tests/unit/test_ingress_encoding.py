"""The ingress decodes Content-Encoding itself: valid bodies come out as sent, bad ones name the header."""

from __future__ import annotations

import gzip
import zlib

import pytest

from core.errors import InvalidEvent, PayloadTooLarge
from ingress.encoding import decode_body

DATA = b'{"msg": "hello"}'


@pytest.mark.parametrize(("encoding", "body"), [
    (None, DATA), ("identity", DATA), ("gzip", gzip.compress(DATA)), ("x-gzip", gzip.compress(DATA)),
    ("deflate", zlib.compress(DATA)), ("deflate", zlib.compress(DATA)[2:-4]), ("GZip", gzip.compress(DATA)),
])
def test_a_valid_body_decodes_to_what_was_compressed(encoding: str | None, body: bytes) -> None:
    assert decode_body(body, encoding, 1024) == DATA


@pytest.mark.parametrize(("encoding", "body"), [
    ("gzip", b"{}"), ("deflate", b"{}"), ("gzip", gzip.compress(DATA)[:-6]), ("br", DATA), ("compress", DATA),
])
def test_a_body_that_does_not_decode_is_refused_naming_the_header(encoding: str, body: bytes) -> None:
    with pytest.raises(InvalidEvent) as refused:
        decode_body(body, encoding, 1024)
    assert refused.value.field == "content-encoding"
    assert encoding in refused.value.reason


def test_a_small_body_that_expands_past_the_limit_is_too_large() -> None:
    bomb = gzip.compress(b"0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(PayloadTooLarge):
        decode_body(bomb, "gzip", 4 * 1024 * 1024)
