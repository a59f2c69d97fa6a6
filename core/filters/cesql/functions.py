"""CESQL's built-in functions: signature (parameter types, variadic type) and implementation.

Arguments are cast to the parameter types before the call (a failed cast passes the zero value and
reports a cast error). INT, BOOL and STRING take any type and convert with their own rules, which
are wider than the implicit casts (BOOL(1) is true; an implicit Integer -> Boolean cast fails).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.filters.cesql.errors import CesqlError, ErrorKind
from core.filters.cesql.types import INT32_MAX, INT32_MIN, Value, to_boolean, to_integer, to_string

Result = tuple[Value, CesqlError | None]


@dataclass(frozen=True, slots=True)
class Function:
    params: tuple[type | None, ...]
    """Parameter types; None means any type, passed as it is."""
    returns: type
    impl: Callable[..., Result]
    variadic: type | None = None


def _ok(value: Value) -> Result:
    return value, None


def _fail(value: Value, message: str) -> Result:
    return value, CesqlError(ErrorKind.FUNCTION_EVALUATION, message)


def _left(x: str, n: int) -> Result:
    return _fail(x, "LEFT: negative length") if n < 0 else _ok(x[:n])


def _right(x: str, n: int) -> Result:
    if n < 0:
        return _fail(x, "RIGHT: negative length")
    return _ok(x[len(x) - n:] if n < len(x) else x)


def _substring(x: str, pos: int, length: int | None = None) -> Result:
    if pos > len(x) or pos < -len(x):
        return _fail("", f"SUBSTRING: position {pos} is outside the string")
    if length is not None and length < 0:
        return _fail("", "SUBSTRING: negative length")
    if pos == 0:
        return _ok("")
    start = pos - 1 if pos > 0 else len(x) + pos
    return _ok(x[start:] if length is None else x[start:start + length])


def _abs(x: int) -> Result:
    if x == INT32_MIN:
        return INT32_MAX, CesqlError(ErrorKind.MATH, "ABS: -2147483648 has no 32-bit absolute value")
    return _ok(abs(x))


def _int(x: Value) -> Result:
    return to_integer(x)


def _bool(x: Value) -> Result:
    if isinstance(x, int) and not isinstance(x, bool):
        return _ok(x != 0)
    return to_boolean(x)


def _is_int(x: Value) -> Result:
    return _ok(to_integer(x)[1] is None)


def _is_bool(x: Value) -> Result:
    return _ok(to_boolean(x)[1] is None)


# name -> overloads by arity; a variadic overload is keyed by its count of fixed parameters, negated.
FUNCTIONS: dict[str, list[Function]] = {
    "LENGTH": [Function((str,), int, lambda x: _ok(len(x)))],
    "CONCAT": [Function((), str, lambda *xs: _ok("".join(xs)), variadic=str)],
    "CONCAT_WS": [Function((str,), str, lambda sep, *xs: _ok(sep.join(xs)), variadic=str)],
    "LOWER": [Function((str,), str, lambda x: _ok(x.lower()))],
    "UPPER": [Function((str,), str, lambda x: _ok(x.upper()))],
    "TRIM": [Function((str,), str, lambda x: _ok(x.strip()))],
    "LEFT": [Function((str, int), str, _left)],
    "RIGHT": [Function((str, int), str, _right)],
    "SUBSTRING": [Function((str, int), str, _substring), Function((str, int, int), str, _substring)],
    "ABS": [Function((int,), int, _abs)],
    "INT": [Function((None,), int, _int)],
    "BOOL": [Function((None,), bool, _bool)],
    "STRING": [Function((None,), str, lambda x: _ok(to_string(x)))],
    "IS_INT": [Function((None,), bool, _is_int)],
    "IS_BOOL": [Function((None,), bool, _is_bool)],
}


def resolve(name: str, arity: int) -> Function | None:
    for function in FUNCTIONS.get(name.upper(), []):
        fixed = len(function.params)
        if arity == fixed or (function.variadic is not None and arity >= fixed):
            return function
    return None
