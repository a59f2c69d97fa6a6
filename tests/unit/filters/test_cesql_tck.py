"""The official CESQL v1 TCK: every YAML file in shared/conformance/cesql-tck, every case, as it is.

The folder is ../shared/conformance/cesql-tck beside the repository, or under $NERVE_SHARED_DIR. If
it is missing, test_the_tck_is_there fails and so does the one placeholder case: nothing skips.
No case is skipped. Each YAML file is read twice: with timestamps left as text (a CloudEvents `time`
is a String in CESQL, and the expected value of "Timestamp type cohercion to string" is that text),
and with BaseLoader for the expression itself (YAML would turn `expression: TRUE` into a boolean and
`expression: -10` into an integer).

A case without `event` or `eventOverrides` runs against a minimal valid event, as the TCK readme says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.filters.cesql import CesqlParseError, compile_expression

TCK = Path(os.environ.get("NERVE_SHARED_DIR") or Path(__file__).resolve().parents[3].parent / "shared") \
    / "conformance" / "cesql-tck"
BASE_EVENT = {"specversion": "1.0", "id": "myId", "source": "localhost.localdomain", "type": "myType"}
# The suites the TCK had when it was copied (README.md there); more files would simply run too.
KNOWN_SUITES = {
    "binary_comparison_operators", "binary_logical_operators", "binary_math_operators", "case_sensitivity",
    "casting_functions", "context_attributes_access", "exists_expression", "in_expression",
    "integer_builtin_functions", "like_expression", "literals", "negate_operator", "not_operator",
    "parse_errors", "spec_examples", "string_builtin_functions", "sub_expression", "subscriptions_api_recreations",
}


class _TextTimestamps(yaml.SafeLoader):
    """SafeLoader that keeps RFC 3339 timestamps as strings."""


_TextTimestamps.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def _cases() -> list[Any]:
    if not TCK.is_dir():
        return [pytest.param(None, id="tck-folder-missing")]
    cases = []
    for path in sorted(TCK.glob("*.yaml")):
        text = path.read_text()
        suite = yaml.load(text, Loader=_TextTimestamps)  # a SafeLoader subclass: no arbitrary objects
        raw = yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader builds only strings
        for index, (case, raw_case) in enumerate(zip(suite["tests"], raw["tests"], strict=True)):
            case = {**case, "expression": raw_case["expression"]}
            cases.append(pytest.param(case, id=f"{path.stem}[{index}] {case['name']}"))
    return cases


CASES = _cases()


def test_the_tck_is_there() -> None:
    assert TCK.is_dir(), f"the CESQL TCK is missing at {TCK}; set NERVE_SHARED_DIR to the shared/ folder"
    assert not KNOWN_SUITES - {p.stem for p in TCK.glob("*.yaml")}
    assert len(CASES) >= 275  # 275 when copied (README.md)


@pytest.mark.parametrize("case", CASES)
def test_tck_case(case: dict[str, Any] | None) -> None:
    assert case is not None, f"the CESQL TCK is missing at {TCK}"
    event = dict(case["event"]) if case.get("event") else {**BASE_EVENT, **(case.get("eventOverrides") or {})}
    expected_error = case.get("error")
    if expected_error == "parse":
        with pytest.raises(CesqlParseError):
            compile_expression(case["expression"])
        return
    value, error = compile_expression(case["expression"]).evaluate(event)
    assert (error.kind.value if error else None) == expected_error, error
    assert type(value) is type(case["result"])
    assert value == case["result"]
