"""CESQL's built-in functions: each one's parameter types, return type and implementation.

The spec (§3.5) defines the string and math functions; the TCK adds INT, BOOL and STRING, and the
engine Knative runs (sdk-go) adds IS_INT and IS_BOOL, so Trigger authors may rely on all of them.
The compiler casts every argument to its parameter type before the call (None = any type, passed as
it is); a failed cast goes on with the zero value and reports a cast error. Names are matched
case-insensitively and overloads are told apart by arity, as §3.5 asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.filters.cesql.errors import CesqlError, ErrorKind
from core.filters.cesql.types import INT32_MAX, INT32_MIN, Value, to_boolean, to_integer, to_string

Result = tuple[Value, CesqlError | None]

# Unicode's White_Space property, which TRIM removes; Python's str.strip() would also take the
# information separators U+001C..U+001F, which the spec says TRIM leaves alone.
WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    params: tuple[type | None, ...]
    returns: type
    impl: Callable[..., Result]
    variadic: type | None = None
    """Type of the arguments after `params`, for CONCAT-like functions; None if the arity is fixed."""


def _ok(value: Value) -> Result:
    return value, None


def _fail(value: Value, message: str) -> Result:
    return value, CesqlError(ErrorKind.FUNCTION_EVALUATION, message)


def _left(x: str, n: int) -> Result:
    return _fail(x, f"LEFT: negative length {n}") if n < 0 else _ok(x[:n])


def _right(x: str, n: int) -> Result:
    if n < 0:
        return _fail(x, f"RIGHT: negative length {n}")
    return _ok(x[len(x) - n:] if n < len(x) else x)


def _substring(x: str, pos: int, length: int | None = None) -> Result:
    if pos > len(x) or pos < -len(x):
        return _fail("", f"SUBSTRING: position {pos} is outside a string of length {len(x)}")
    if length is not None and length < 0:
        return _fail("", f"SUBSTRING: negative length {length}")
    if pos == 0:
        return _ok("")
    start = pos - 1 if pos > 0 else len(x) + pos
    return _ok(x[start:] if length is None else x[start:start + length])


def _abs(x: int) -> Result:
    if x == INT32_MIN:
        return INT32_MAX, CesqlError(ErrorKind.MATH, "ABS(-2147483648) overflows a 32-bit integer")
    return _ok(abs(x))


def _is_int(x: Value) -> Result:
    return _ok(to_integer(x)[1] is None)


def _is_bool(x: Value) -> Result:
    return _ok(to_boolean(x)[1] is None)


_BUILTINS = (
    Function("LENGTH", (str,), int, lambda x: _ok(len(x))),
    Function("CONCAT", (), str, lambda *xs: _ok("".join(xs)), variadic=str),
    Function("CONCAT_WS", (str,), str, lambda sep, *xs: _ok(sep.join(xs)), variadic=str),
    Function("LOWER", (str,), str, lambda x: _ok(x.lower())),
    Function("UPPER", (str,), str, lambda x: _ok(x.upper())),
    Function("TRIM", (str,), str, lambda x: _ok(x.strip(WHITESPACE))),
    Function("LEFT", (str, int), str, _left),
    Function("RIGHT", (str, int), str, _right),
    Function("SUBSTRING", (str, int), str, _substring),
    Function("SUBSTRING", (str, int, int), str, _substring),
    Function("ABS", (int,), int, _abs),
    Function("INT", (None,), int, to_integer),
    Function("BOOL", (None,), bool, to_boolean),
    Function("STRING", (None,), str, lambda x: _ok(to_string(x))),
    Function("IS_INT", (None,), bool, _is_int),
    Function("IS_BOOL", (None,), bool, _is_bool),
)

FUNCTIONS: dict[str, tuple[Function, ...]] = {}
for _f in _BUILTINS:
    FUNCTIONS[_f.name] = (*FUNCTIONS.get(_f.name, ()), _f)


def resolve(name: str, arity: int) -> Function | None:
    """The overload of `name` that takes `arity` arguments: a fixed arity first, then a variadic one."""
    overloads = FUNCTIONS.get(name.upper(), ())
    for function in overloads:
        if function.variadic is None and len(function.params) == arity:
            return function
    for function in overloads:
        if function.variadic is not None and arity >= len(function.params):
            return function
    return None
