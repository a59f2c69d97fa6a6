"""The official CESQL v1 TCK, every file and every case, loaded as it is from shared/conformance.

No case is skipped. The YAML is read with timestamps left as text (a CloudEvents `time` is a String
in CESQL, and the TCK's expected value for `time` is that same text) and each expression as its raw
text (YAML would otherwise turn `expression: TRUE` into a boolean).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.filters.cesql import CesqlParseError, compile_expression
from tests.support.shared import conformance

TCK = conformance("cesql-tck")
BASE_EVENT = {"specversion": "1.0", "id": "myId", "source": "localhost.localdomain", "type": "myType"}


class _TextTimestamps(yaml.SafeLoader):
    """SafeLoader that keeps RFC 3339 timestamps as strings."""


_TextTimestamps.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def _cases() -> list[Any]:
    files = sorted(TCK.glob("*.yaml"))
    assert len(files) == 18, f"expected the 18 TCK files in {TCK}"
    cases = []
    for path in files:
        text = path.read_text()
        suite = yaml.load(text, Loader=_TextTimestamps)  # a SafeLoader subclass: no arbitrary objects
        # YAML reads an unquoted `expression: TRUE` or `-10` as a bool or int; BaseLoader keeps the text.
        raw = yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader builds only strings
        for index, (case, raw_case) in enumerate(zip(suite["tests"], raw["tests"], strict=True)):
            case = {**case, "expression": raw_case["expression"]}
            cases.append(pytest.param(case, id=f"{Path(path).stem}[{index}] {case['name']}"))
    return cases


CASES = _cases()


def test_the_tck_has_all_275_cases() -> None:
    assert len(CASES) == 275


@pytest.mark.parametrize("case", CASES)
def test_tck_case(case: dict[str, Any]) -> None:
    event = dict(case["event"]) if case.get("event") else {**BASE_EVENT, **(case.get("eventOverrides") or {})}
    expected_error = case.get("error")
    if expected_error == "parse":
        with pytest.raises(CesqlParseError):
            compile_expression(case["expression"])
        return
    value, error = compile_expression(case["expression"]).evaluate(event)
    assert (error.kind.value if error else None) == expected_error
    assert type(value) is type(case["result"])
    assert value == case["result"]
