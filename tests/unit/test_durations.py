from __future__ import annotations

import pytest

from core.durations import parse_ms


@pytest.mark.parametrize(("text", "ms"), [("PT0.2S", 200), ("PT1S", 1000), ("PT1M", 60000), ("P1D", 86400000),
                                          ("PT0S", 0), ("PT1H30M", 5400000)])
def test_iso8601_durations(text: str, ms: int) -> None:
    assert parse_ms(text) == ms


@pytest.mark.parametrize("text", ["1s", "", "PT", "P1Y", "P1M", "soon", "-PT1S", {}, [], ["PT1S"], 5, None])
def test_bad_durations_say_why(text: object) -> None:
    with pytest.raises(ValueError, match=r"ISO 8601|years or months|negative"):
        parse_ms(text)  # type: ignore[arg-type]  # manifests hold any JSON value
