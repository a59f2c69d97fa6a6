"""Which Accept-Encoding headers get the long poll's contract gzipped (control/server.py)."""

from __future__ import annotations

import pytest

from control.server import accepts_gzip


@pytest.mark.parametrize(("header", "gzipped"), [
    ("gzip, deflate", True),          # aiohttp's client, the data plane's follower
    ("deflate, gzip;q=0.5", True),
    ("GZIP", True),
    ("*", True),
    ("x-gzip", True),
    ("", False),
    ("identity", False),
    ("br, deflate", False),
    ("gzip;q=0", False),
    ("gzip;q=0.0, identity", False),
    ("gzip;q=nonsense", False),
])
def test_accept_encoding(header: str, gzipped: bool) -> None:
    assert accepts_gzip(header) is gzipped
