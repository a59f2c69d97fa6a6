"""CESQL text -> a Python closure, once per expression; evaluation never parses again.

Each node compiles to `fn(attributes) -> (value, error | None)`. The evaluation is total, as the
spec asks: an operand's error makes the operator return its zero value with that error; a failed
implicit cast goes on with the zero value and reports a cast error; AND and OR short-circuit. The
TCK in ../shared/conformance/cesql-tck fixes every one of these rules.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from core.filters.cesql.errors import CesqlError, CesqlParseError, ErrorKind
from core.filters.cesql.functions import resolve
from core.filters.cesql.types import (
    INT32_MAX,
    INT32_MIN,
    ZERO,
    Value,
    cast,
    to_boolean,
    to_integer,
    to_string,
    type_of,
    wrap32,
)

Attributes = Mapping[str, Any]
Result = tuple[Value, CesqlError | None]
Fn = Callable[[Attributes], Result]

# A valid event always carries these, so EXISTS is true for them whatever the mapping holds.
REQUIRED = frozenset({"specversion", "id", "source", "type"})


class _Node:
    __slots__ = ("const", "fn", "raw_int")

    def __init__(self, fn: Fn, const: Value | None = None, raw_int: int | None = None) -> None:
        self.fn = fn
        self.const = const
        self.raw_int = raw_int


def _const(value: Value) -> _Node:
    result: Result = (value, None)
    return _Node(lambda _: result, const=value)


def _unquote(token: str) -> str:
    quote = token[0]
    return token[1:-1].replace("\\" + quote, quote)


def _like_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _arith(op: Callable[[int, int], int], check_zero: bool) -> Callable[[_Node, _Node], _Node]:
    def build(left: _Node, right: _Node) -> _Node:
        lf, rf = left.fn, right.fn

        def fn(a: Attributes) -> Result:
            lv, err = lf(a)
            if err is not None:
                return 0, err
            rv, err = rf(a)
            if err is not None:
                return 0, err
            x, cerr = to_integer(lv)
            y, cerr2 = to_integer(rv)
            if check_zero and y == 0:
                return 0, CesqlError(ErrorKind.MATH, "division by zero")
            return wrap32(op(x, y)), cerr or cerr2

        return _Node(fn)

    return build


def _truncdiv(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


def _truncmod(x: int, y: int) -> int:
    return x - y * _truncdiv(x, y)


def _compare(op: Callable[[int, int], bool]) -> Callable[[_Node, _Node], _Node]:
    def build(left: _Node, right: _Node) -> _Node:
        lf, rf = left.fn, right.fn

        def fn(a: Attributes) -> Result:
            lv, err = lf(a)
            if err is not None:
                return False, err
            rv, err = rf(a)
            if err is not None:
                return False, err
            x, cerr = to_integer(lv)
            y, cerr2 = to_integer(rv)
            return op(x, y), cerr or cerr2

        return _Node(fn)

    return build


def _equality(negate: bool) -> Callable[[_Node, _Node], _Node]:
    def build(left: _Node, right: _Node) -> _Node:
        lf, rf = left.fn, right.fn

        def fn(a: Attributes) -> Result:
            lv, err = lf(a)
            if err is not None:
                return False, err
            rv, err = rf(a)
            if err is not None:
                return False, err
            # '=' is ambiguous across types: the right operand's type picks the overload (spec 3.7).
            cv, cerr = cast(lv, type_of(rv))
            if cerr is not None:
                return False, cerr
            return (cv != rv) if negate else (cv == rv), None

        return _Node(fn)

    return build


def _logic(kind: str) -> Callable[[_Node, _Node], _Node]:
    def build(left: _Node, right: _Node) -> _Node:
        lf, rf = left.fn, right.fn

        def fn(a: Attributes) -> Result:
            lv, err = lf(a)
            if err is not None:
                return False, err
            x, cerr = to_boolean(lv)
            if kind == "and" and not x:
                return False, cerr
            if kind == "or" and x:
                return True, cerr
            rv, err = rf(a)
            if err is not None:
                return False, err
            y, cerr2 = to_boolean(rv)
            # Reached for AND only when x is true, for OR only when x is false: y decides.
            value = (x != y) if kind == "xor" else y
            return value, cerr or cerr2

        return _Node(fn)

    return build


def _tokens_out(children: list[Any]) -> list[Any]:
    return [c for c in children if not isinstance(c, Token) or c.type in ("NAME", "STRING", "INT")]


class _Compiler(Transformer[Token, _Node]):
    def __init__(self) -> None:
        super().__init__()
        self.missing_functions: list[str] = []

    # literals and names
    def integer(self, children: list[Token]) -> _Node:
        raw = int(children[0])
        node = _const(raw) if raw <= INT32_MAX else _Node(lambda _: (0, None))
        node.raw_int = raw
        return node

    def string(self, children: list[Token]) -> _Node:
        return _const(_unquote(str(children[0])))

    def true(self, _: list[Token]) -> _Node:
        return _const(True)

    def false(self, _: list[Token]) -> _Node:
        return _const(False)

    def ident(self, children: list[Token]) -> _Node:
        name = str(children[0]).lower()
        missing = CesqlError(ErrorKind.MISSING_ATTRIBUTE, f"attribute {name!r} is not in the event")

        def fn(a: Attributes) -> Result:
            value = a.get(name)
            if value is None:
                return False, missing
            return value, None

        return _Node(fn)

    def exists(self, children: list[Any]) -> _Node:
        name = str(_tokens_out(children)[0]).lower()
        if name in REQUIRED:
            return _const(True)
        return _Node(lambda a: (name in a, None))

    # unary
    def not_(self, children: list[Any]) -> _Node:
        child = _tokens_out(children)[0].fn

        def fn(a: Attributes) -> Result:
            value, err = child(a)
            if err is not None:
                return False, err
            b, cerr = to_boolean(value)
            return not b, cerr

        return _Node(fn)

    def neg(self, children: list[Any]) -> _Node:
        node: _Node = _tokens_out(children)[0]
        if node.raw_int is not None:
            value = -node.raw_int
            if value < INT32_MIN:
                raise CesqlParseError(f"integer literal {node.raw_int} is outside the 32-bit range")
            folded = _const(value)
            return folded
        child = node.fn

        def fn(a: Attributes) -> Result:
            value, err = child(a)
            if err is not None:
                return 0, err
            i, cerr = to_integer(value)
            return wrap32(-i), cerr

        return _Node(fn)

    # binary
    def _binary(self, children: list[Any], build: Callable[[_Node, _Node], _Node]) -> _Node:
        left, right = _tokens_out(children)
        return build(left, right)

    def plus(self, c: list[Any]) -> _Node:
        return self._binary(c, _arith(operator.add, False))

    def minus(self, c: list[Any]) -> _Node:
        return self._binary(c, _arith(operator.sub, False))

    def times(self, c: list[Any]) -> _Node:
        return self._binary(c, _arith(operator.mul, False))

    def div(self, c: list[Any]) -> _Node:
        return self._binary(c, _arith(_truncdiv, True))

    def mod(self, c: list[Any]) -> _Node:
        return self._binary(c, _arith(_truncmod, True))

    def lt(self, c: list[Any]) -> _Node:
        return self._binary(c, _compare(operator.lt))

    def le(self, c: list[Any]) -> _Node:
        return self._binary(c, _compare(operator.le))

    def gt(self, c: list[Any]) -> _Node:
        return self._binary(c, _compare(operator.gt))

    def ge(self, c: list[Any]) -> _Node:
        return self._binary(c, _compare(operator.ge))

    def eq(self, c: list[Any]) -> _Node:
        return self._binary(c, _equality(False))

    def ne(self, c: list[Any]) -> _Node:
        return self._binary(c, _equality(True))

    def and_(self, c: list[Any]) -> _Node:
        return self._binary(c, _logic("and"))

    def or_(self, c: list[Any]) -> _Node:
        return self._binary(c, _logic("or"))

    def xor_(self, c: list[Any]) -> _Node:
        return self._binary(c, _logic("xor"))

    # LIKE and IN
    def _like(self, children: list[Any], negate: bool) -> _Node:
        value_node, pattern = _tokens_out(children)
        child, regex = value_node.fn, _like_regex(_unquote(str(pattern)))
        match = regex.fullmatch

        def fn(a: Attributes) -> Result:
            value, err = child(a)
            if err is not None:
                return False, err
            found = match(to_string(value)) is not None
            return found != negate, None

        return _Node(fn)

    def like(self, c: list[Any]) -> _Node:
        return self._like(c, False)

    def not_like(self, c: list[Any]) -> _Node:
        return self._like(c, True)

    def set(self, children: list[Any]) -> list[_Node]:
        return list(_tokens_out(children))

    def _in(self, children: list[Any], negate: bool) -> _Node:
        value_node, members = _tokens_out(children)
        child, fns = value_node.fn, [m.fn for m in members]

        def fn(a: Attributes) -> Result:
            value, err = child(a)
            if err is not None:
                return False, err
            target = type_of(value)
            for member in fns:
                mv, err = member(a)
                if err is not None:
                    return False, err
                # The left operand's type is the target of every cast (spec 3.7, IN).
                cv, cerr = cast(mv, target)
                if cerr is not None:
                    return False, cerr
                if cv == value:
                    return not negate, None
            return negate, None

        return _Node(fn)

    def in_(self, c: list[Any]) -> _Node:
        return self._in(c, False)

    def not_in(self, c: list[Any]) -> _Node:
        return self._in(c, True)

    # functions
    def args(self, children: list[Any]) -> list[_Node]:
        return list(_tokens_out(children))

    def call(self, children: list[Any]) -> _Node:
        name = str(children[0])
        arg_nodes: list[_Node] = children[1] if len(children) > 1 and children[1] is not None else []
        function = resolve(name, len(arg_nodes))
        if function is None:
            self.missing_functions.append(f"{name.upper()} with {len(arg_nodes)} argument(s)")
            missing = CesqlError(ErrorKind.MISSING_FUNCTION, f"no function {name.upper()} takes {len(arg_nodes)} "
                                                             "argument(s)")
            return _Node(lambda _: (False, missing))
        fns = [n.fn for n in arg_nodes]
        types = [*function.params, *([function.variadic] * (len(fns) - len(function.params)))]
        impl, zero = function.impl, ZERO[function.returns]

        def fn(a: Attributes) -> Result:
            values: list[Value] = []
            first: CesqlError | None = None
            for arg, target in zip(fns, types, strict=True):
                value, err = arg(a)
                if err is not None:
                    return zero, err
                if target is not None:
                    value, cerr = cast(value, target)
                    first = first or cerr
                values.append(value)
            result, err = impl(*values)
            return result, first or err

        return _Node(fn)


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    return Lark(grammar, parser="lalr", maybe_placeholders=True)


class Expression:
    """A compiled CESQL expression."""

    __slots__ = ("_fn", "missing_functions", "text")

    def __init__(self, text: str, fn: Fn, missing_functions: list[str]) -> None:
        self.text = text
        self._fn = fn
        self.missing_functions = missing_functions

    def evaluate(self, attributes: Attributes) -> Result:
        return self._fn(attributes)

    def matches(self, attributes: Attributes) -> bool:
        """As a filter: only a Boolean true without any error passes (spec 1.2)."""
        value, err = self._fn(attributes)
        return value is True and err is None


def compile_expression(text: str) -> Expression:
    """Parse and compile; raises CesqlParseError with the line and column of the problem."""
    try:
        tree = _parser().parse(text)
    except UnexpectedEOF as exc:
        raise CesqlParseError(f"unexpected end of expression, expected one of {sorted(exc.expected)}",
                              exc.line if exc.line > 0 else 1, max(len(text), 1)) from None
    except UnexpectedCharacters as exc:
        pos = exc.pos_in_stream or 0
        raise CesqlParseError(f"unexpected character {text[pos:pos + 1]!r}", exc.line, exc.column) from None
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        found = f"{token.value!r}" if token is not None and token.value else "end of expression"
        raise CesqlParseError(f"unexpected {found}", exc.line, exc.column) from None
    compiler = _Compiler()
    try:
        root = compiler.transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, CesqlParseError):
            raise exc.orig_exc from None
        raise
    if root.raw_int is not None and root.raw_int > INT32_MAX:
        raise CesqlParseError(f"integer literal {root.raw_int} is outside the 32-bit range")
    return Expression(text, root.fn, compiler.missing_functions)



