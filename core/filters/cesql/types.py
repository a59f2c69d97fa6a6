"""CESQL's three types and the casts between them (spec §3.7 and the TCK).

Implicit casts: String -> Integer parses an optionally signed decimal in the 32-bit range; String ->
Boolean accepts true/false in any case; Boolean -> Integer is 1/0; anything -> String is its CESQL
text (true/false, decimal). Integer -> Boolean is not an implicit cast (only the BOOL function does
it). A failed cast yields the type's zero value and a cast error; evaluation goes on with that value.
"""

from __future__ import annotations

import re

from core.filters.cesql.errors import CesqlError, ErrorKind

Value = bool | int | str
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_INTEGER = re.compile(r"^[+-]?[0-9]+$")

BOOLEAN, INTEGER, STRING = bool, int, str
ZERO: dict[type, Value] = {bool: False, int: 0, str: ""}


def type_of(value: Value) -> type:
    # bool before int: in Python True is an int too.
    return bool if isinstance(value, bool) else type(value)


def wrap32(value: int) -> int:
    """Two's-complement wrap, as 32-bit integer arithmetic does."""
    return (value - INT32_MIN) % 2**32 + INT32_MIN


def to_string(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_integer(value: Value) -> tuple[int, CesqlError | None]:
    if isinstance(value, bool):
        return int(value), None
    if isinstance(value, int):
        return value, None
    text = value.strip()
    if _INTEGER.match(text):
        number = int(text)
        if INT32_MIN <= number <= INT32_MAX:
            return number, None
    return 0, CesqlError(ErrorKind.CAST, f"cannot cast {value!r} to Integer")


def to_boolean(value: Value) -> tuple[bool, CesqlError | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str):
        lower = value.lower()
        if lower == "true":
            return True, None
        if lower == "false":
            return False, None
    return False, CesqlError(ErrorKind.CAST, f"cannot cast {value!r} to Boolean")


def cast(value: Value, target: type) -> tuple[Value, CesqlError | None]:
    if target is str:
        return to_string(value), None
    if target is int:
        return to_integer(value)
    return to_boolean(value)
