"""A destination's URI is judged as urlsplit judges it, whether or not the quick path answers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from control.api.destination import scheme_and_host

URIS = [
    "http://sink.default.svc.cluster.local/path?q=1#f", "https://h:8443", "http://h", "HTTP://H/", "a+b.c-d://h/x",
    "http://127.0.0.1:9/t/1", "http:///path", "http://", "http:/h", "http:h", "//h/p", "/rel", "rel", "", " http://h",
    "http://h ", "ht tp://h", "http:// h", "http://\th/", "http://\t/", "http://h\n/", "\x01http://h", "http://[::1]:80/",
    "http://[::1/", "http://h]/", "http://é/", "http://h/é", "1http://h", "+http://h", "http://h?x", "http://?x",
    "http://#f", "http://h/\x7f", "mailto:a@b", "urn:x:y", "http://user:pw@h/", "http://h%20/", "x-y://h",
]


@pytest.mark.parametrize("uri", URIS)
def test_scheme_and_host_agree_with_urlsplit(uri: str) -> None:
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)):
            scheme_and_host(uri)
        return
    assert scheme_and_host(uri) == (bool(parts.scheme), bool(parts.netloc))
