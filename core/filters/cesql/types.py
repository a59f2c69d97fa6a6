"""CESQL's three types, their zero values and the casts between them (spec §3.1 and §3.7).

Every implicit cast of the spec's table is supported: String -> Integer reads an optionally signed
base-10 number in the 32-bit range; String -> Boolean accepts "true"/"false" in any case; Integer ->
Boolean is `x != 0`; Boolean -> Integer is 1/0; anything -> String is its CESQL text. A failed cast
yields the target's zero value and a cast error; the caller decides whether evaluation goes on.

One exception, pinned by the TCK rather than the spec: the NOT operator casts with
`to_boolean_strict`, where an Integer is not a Boolean (not_operator.yaml, "Invalid int cast":
`NOT 10` is true with a cast error). sdk-go, which Knative runs, answers false without error; as a
filter both answers mean "no match", so the difference cannot change which events a Trigger gets.
"""

from __future__ import annotations

import re

from core.filters.cesql.errors import CesqlError, ErrorKind

Value = bool | int | str
Cast = tuple[Value, CesqlError | None]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")

ZERO: dict[type, Value] = {bool: False, int: 0, str: ""}
TYPE_NAMES: dict[type, str] = {bool: "Boolean", int: "Integer", str: "String"}


def type_of(value: Value) -> type:
    # bool before int: in Python True is an int too.
    return bool if value is True or value is False else type(value)


def wrap32(value: int) -> int:
    """Two's-complement wrap-around, as 32-bit integer arithmetic does on overflow."""
    if INT32_MIN <= value <= INT32_MAX:
        return value
    return (value - INT32_MIN) % 2**32 + INT32_MIN


def to_string(value: Value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value if isinstance(value, str) else str(value)


def to_integer(value: Value) -> tuple[int, CesqlError | None]:
    if isinstance(value, int):  # bool included: True -> 1, False -> 0
        return int(value), None
    # fullmatch, not int(): int() also takes spaces, underscores and non-ASCII digits.
    # Leading zeros dropped, more than 10 digits is out of 32-bit range: int() of a long digit string
    # is quadratic, and past 4,300 digits Python raises instead of answering.
    if _INTEGER.fullmatch(value):
        digits = value.lstrip("+-").lstrip("0")
        number = int(digits or "0") if len(digits) <= 10 else INT32_MAX + 1
        number = -number if value.startswith("-") else number
        if INT32_MIN <= number <= INT32_MAX:
            return number, None
    return 0, CesqlError(ErrorKind.CAST, f"cannot cast {_shown(value)} to Integer")


def to_boolean(value: Value) -> tuple[bool, CesqlError | None]:
    if value is True or value is False:
        return value, None
    if isinstance(value, int):
        return value != 0, None
    return _string_to_boolean(value)


def to_boolean_strict(value: Value) -> tuple[bool, CesqlError | None]:
    """Boolean or String only: how the TCK wants NOT to cast (see the module docstring)."""
    if value is True or value is False:
        return value, None
    if isinstance(value, int):
        return False, CesqlError(ErrorKind.CAST, f"cannot cast {value} to Boolean")
    return _string_to_boolean(value)


def _string_to_boolean(value: str) -> tuple[bool, CesqlError | None]:
    lower = value.lower()
    if lower == "true":
        return True, None
    if lower == "false":
        return False, None
    return False, CesqlError(ErrorKind.CAST, f"cannot cast {_shown(value)} to Boolean")


def _shown(value: str) -> str:
    # An error is built per failed cast, per event: quoting a megabyte value whole would cost more
    # than the cast.
    return repr(value) if len(value) <= 60 else f"{value[:40]!r}... ({len(value)} characters)"


def cast(value: Value, target: type) -> Cast:
    if target is str:
        return to_string(value), None
    if target is int:
        return to_integer(value)
    return to_boolean(value)
