"""CESQL parse tree -> one Python closure per expression, built once; evaluation never parses again.

Every node compiles to `fn(attributes) -> (value, error | None)`. Evaluation is total, as spec §3.3
asks: an operand's error makes its operator return the operator's zero value with that error (so
`1 / missing` is 0 with a missingAttribute error, not a math error), and a failed implicit cast goes
on with the target's zero value and reports a cast error. AND and OR short-circuit. A sub-tree that
does not read the event is evaluated at compile time, and the closures below specialise the common
shapes (a constant on the right of `=`, a LIKE pattern that is a plain prefix or suffix, an IN over
literals) because this runs once per event per Trigger.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from lark import Token, Transformer
from lark.exceptions import VisitError

from core.filters.cesql.errors import CesqlError, CesqlParseError, ErrorKind
from core.filters.cesql.functions import resolve
from core.filters.cesql.parser import parse
from core.filters.cesql.types import (
    INT32_MAX,
    INT32_MIN,
    ZERO,
    Value,
    cast,
    to_boolean,
    to_boolean_strict,
    to_integer,
    to_string,
    wrap32,
)

Attributes = Mapping[str, Any]
Result = tuple[Value, CesqlError | None]
Fn = Callable[[Attributes], Result]

# A valid event always carries these, so EXISTS is true for them whatever the mapping holds (§3.4.4).
REQUIRED = frozenset({"specversion", "id", "source", "type"})
_IDENTIFIER = re.compile(r"[a-zA-Z0-9]+")
_FUNCTION_NAME = re.compile(r"[a-zA-Z][a-zA-Z_]*")
_NO_EVENT: Mapping[str, Any] = {}
TRUE: Result = (True, None)
FALSE: Result = (False, None)


class Node:
    __slots__ = ("const", "fn", "literal", "token")

    def __init__(self, fn: Fn, const: Result | None = None, literal: int | None = None,
                 token: Token | None = None) -> None:
        self.fn = fn
        self.const = const
        """The result, when it does not depend on the event."""
        self.literal = literal
        """An unsigned integer literal as written, so a leading '-' can fold it (-2147483648)."""
        self.token = token


def _constant(result: Result) -> Node:
    return Node(lambda _: result, const=result)


def _folded(fn: Fn, *children: Node) -> Node:
    """The node for `fn`, evaluated now when none of its operands reads the event (functions are pure)."""
    if all(child.const is not None for child in children):
        return _constant(fn(_NO_EVENT))
    return Node(fn)


def _as_string(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def _error_at(token: Token, message: str) -> CesqlParseError:
    return CesqlParseError(message, token.line or 1, token.column or 1)


def _unquote(token: Token) -> str:
    """A string literal's value: only the delimiting quote is escaped (\\' or \\"), per §2.2."""
    text, quote = str(token), str(token)[0]
    body = text[1:-1]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", lambda m: quote if m.group(1) == quote else m.group(0), body, flags=re.DOTALL)


# ----------------------------------------------------------------------------------------- arithmetic


def _truncdiv(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


def _truncmod(x: int, y: int) -> int:
    return x - y * _truncdiv(x, y)


_ARITHMETIC: dict[str, tuple[Callable[[int, int], int], bool]] = {
    "plus": (lambda x, y: x + y, False),
    "minus": (lambda x, y: x - y, False),
    "times": (lambda x, y: x * y, False),
    "div": (_truncdiv, True),
    "mod": (_truncmod, True),
}


def _arithmetic(name: str, left: Node, right: Node) -> Node:
    op, divides = _ARITHMETIC[name]
    lf, rf = left.fn, right.fn

    def fn(a: Attributes) -> Result:
        lv, err = lf(a)
        if err is not None:
            return 0, err
        rv, err = rf(a)
        if err is not None:
            return 0, err
        x, xerr = (lv, None) if type(lv) is int else to_integer(lv)
        y, yerr = (rv, None) if type(rv) is int else to_integer(rv)
        if divides and y == 0:
            return 0, xerr or yerr or CesqlError(ErrorKind.MATH, "division by zero")
        return wrap32(op(x, y)), xerr or yerr

    return _folded(fn, left, right)


_ORDERING: dict[str, Callable[[int, int], bool]] = {
    "lt": lambda x, y: x < y, "le": lambda x, y: x <= y, "gt": lambda x, y: x > y, "ge": lambda x, y: x >= y,
}


def _ordering(name: str, left: Node, right: Node) -> Node:
    # < <= > >= exist for Integer x Integer only: both operands are cast to Integer (§3.4.2).
    op = _ORDERING[name]
    lf, rf = left.fn, right.fn

    def fn(a: Attributes) -> Result:
        lv, err = lf(a)
        if err is not None:
            return False, err
        rv, err = rf(a)
        if err is not None:
            return False, err
        x, xerr = (lv, None) if type(lv) is int else to_integer(lv)
        y, yerr = (rv, None) if type(rv) is int else to_integer(rv)
        return op(x, y), xerr or yerr

    return _folded(fn, left, right)


def _equality(negate: bool, left: Node, right: Node) -> Node:
    # '=' is defined for three pairs of equal types; the right operand's type picks one and the left
    # operand is cast to it (§3.7, ambiguous binary operators).
    lf, rf = left.fn, right.fn
    if right.const is not None and right.const[1] is None:
        wanted = right.const[0]
        target = type(wanted)

        def against_constant(a: Attributes) -> Result:
            lv, err = lf(a)
            if err is not None:
                return False, err
            if type(lv) is not target:
                lv, err = cast(lv, target)
                if err is not None:
                    return False, err
            return TRUE if (lv == wanted) is not negate else FALSE

        return _folded(against_constant, left, right)

    def fn(a: Attributes) -> Result:
        lv, err = lf(a)
        if err is not None:
            return False, err
        rv, err = rf(a)
        if err is not None:
            return False, err
        if type(lv) is not type(rv):
            lv, err = cast(lv, type(rv))
            if err is not None:
                return False, err
        return TRUE if (lv == rv) is not negate else FALSE

    return _folded(fn, left, right)


# ----------------------------------------------------------------------------------------- logic


def _boolean(value: Value) -> tuple[bool, CesqlError | None]:
    return (value, None) if value is True or value is False else to_boolean(value)


def _logic(kind: str, left: Node, right: Node) -> Node:
    lf, rf = left.fn, right.fn

    def fn_and(a: Attributes) -> Result:
        lv, err = lf(a)
        if err is not None:
            return False, err
        x, xerr = _boolean(lv)
        if not x:
            return False, xerr
        rv, err = rf(a)
        if err is not None:
            return False, err
        y, yerr = _boolean(rv)
        return y, xerr or yerr

    def fn_or(a: Attributes) -> Result:
        lv, err = lf(a)
        if err is not None:
            return False, err
        x, xerr = _boolean(lv)
        if x:
            return True, xerr
        rv, err = rf(a)
        if err is not None:
            return False, err
        y, yerr = _boolean(rv)
        return y, xerr or yerr

    def fn_xor(a: Attributes) -> Result:
        lv, err = lf(a)
        if err is not None:
            return False, err
        rv, err = rf(a)
        if err is not None:
            return False, err
        x, xerr = _boolean(lv)
        y, yerr = _boolean(rv)
        return x is not y, xerr or yerr

    return _folded({"and": fn_and, "or": fn_or, "xor": fn_xor}[kind], left, right)


# ----------------------------------------------------------------------------------------- LIKE and IN


def _like_matcher(pattern: str) -> Callable[[str], bool]:
    """`%` is any run of characters, `_` one character, `\\%` and `\\_` themselves (§3.4.3).

    A backslash before anything else is an ordinary character (the TCK matches 'ab\\c' against itself).

    Never backtracks, so the event's producer cannot make it slow (issue 9, defect 5: the old
    translation to one regex, `.*a.*a.*b`, took 4.7 s on 3,000 characters). The pattern is split at
    every `%` into fixed-length segments; the first must match at the start, the last at the end, and
    each one between is placed at its leftmost occurrence after the previous one. Leftmost placement
    is optimal (a later occurrence only leaves less room for what follows), so no choice is ever
    revisited: each segment is one `str.find` (linear in CPython) or, when it holds `_`, one
    quantifier-free regex search, at most len(segment) steps per position. The worst case is
    O(len(subject) * longest segment), and both are bounded: the segment by the Trigger's text.
    """
    segments: list[list[str]] = [[]]  # one character each, _ANY for '_'; a new segment after each '%'
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            segments[-1].append(pattern[i + 1])
            i += 2
            continue
        if c == "%":
            segments.append([])
        else:
            segments[-1].append(_ANY if c == "_" else c)
        i += 1
    if len(segments) == 1:
        return _anchored(segments[0], whole=True)
    head, *middle, tail = segments
    middle = [segment for segment in middle if segment]  # '%%' is '%'
    # The common shapes, one C call each: 'a%', '%a', '%a%', '%'.
    if not middle and not tail and _ANY not in head:
        prefix = "".join(head)
        return lambda s: s.startswith(prefix)
    if not middle and not head and _ANY not in tail:
        suffix = "".join(tail)
        return lambda s: s.endswith(suffix)
    if not head and not tail and len(middle) == 1 and _ANY not in middle[0]:
        infix = "".join(middle[0])
        return lambda s: infix in s
    at_start, at_end = _anchored(head), _anchored(tail)
    finders = [_finder(segment) for segment in middle]
    least = len(head) + len(tail) + sum(len(segment) for segment in middle)
    head_length, tail_length = len(head), len(tail)

    def matches(s: str) -> bool:
        if len(s) < least or not at_start(s, 0) or not at_end(s, len(s) - tail_length):
            return False
        position, end = head_length, len(s) - tail_length
        for find in finders:
            position = find(s, position, end)
            if position < 0:
                return False
        return True

    return matches


def _anchored(segment: list[str], whole: bool = False) -> Callable[..., bool]:
    """`fn(s, at)`: the segment matches s at `at` (with whole=True, `fn(s)`: it is all of s)."""
    if _ANY not in segment:
        text = "".join(segment)
        if whole:
            return text.__eq__
        return lambda s, at: s.startswith(text, at)
    regex = re.compile("".join("." if c is _ANY else re.escape(c) for c in segment), re.DOTALL)
    if whole:
        return lambda s: regex.fullmatch(s) is not None
    return lambda s, at: regex.match(s, at) is not None


def _finder(segment: list[str]) -> Callable[[str, int, int], int]:
    """`fn(s, start, end)`: where the segment's leftmost occurrence in s[start:end] ends, or -1."""
    if _ANY not in segment:
        text = "".join(segment)
        size = len(text)

        def find(s: str, start: int, end: int) -> int:
            found = s.find(text, start, end)
            return found + size if found >= 0 else -1

        return find
    regex = re.compile("".join("." if c is _ANY else re.escape(c) for c in segment), re.DOTALL)

    def search(s: str, start: int, end: int) -> int:
        found = regex.search(s, start, end)
        return found.end() if found is not None else -1

    return search


_ANY = "\x00_any_"  # an identity the pattern text can never produce (a part is one character)


def _like(negate: bool, value: Node, pattern: Token) -> Node:
    matches = _like_matcher(_unquote(pattern))
    vf = value.fn

    def fn(a: Attributes) -> Result:
        v, err = vf(a)
        if err is not None:
            return False, err
        # LIKE is String x String: a non-String left operand is cast (§3.4.3), which cannot fail.
        return TRUE if matches(v if type(v) is str else to_string(v)) is not negate else FALSE

    return _folded(fn, value)


def _in(negate: bool, value: Node, members: list[Node]) -> Node:
    # The left operand's type is the target every member is cast to (§3.7, IN).
    vf = value.fn
    found, missing = (FALSE, TRUE) if negate else (TRUE, FALSE)
    if all(m.const is not None and m.const[1] is None for m in members):
        constants: list[Value] = [m.const[0] for m in members if m.const is not None]
        # Per left-operand type: a set when every member casts cleanly, else the casts in order, so
        # the first failing cast is reported exactly where a loop would have met it.
        sets: dict[type, frozenset[Value]] = {}
        ordered: dict[type, list[tuple[Value, CesqlError | None]]] = {}
        for target in (str, int, bool):
            casts = [cast(c, target) for c in constants]
            if all(err is None for _, err in casts):
                sets[target] = frozenset(v for v, _ in casts)
            else:
                ordered[target] = casts

        def against_constants(a: Attributes) -> Result:
            v, err = vf(a)
            if err is not None:
                return False, err
            pool = sets.get(type(v))
            if pool is not None:
                return found if v in pool else missing
            for member, cerr in ordered[type(v)]:
                if cerr is not None:
                    return False, cerr
                if member == v:
                    return found
            return missing

        return _folded(against_constants, value)

    fns = [m.fn for m in members]

    def fn(a: Attributes) -> Result:
        v, err = vf(a)
        if err is not None:
            return False, err
        target = type(v)
        for member in fns:
            mv, err = member(a)
            if err is not None:
                return False, err
            if type(mv) is not target:
                mv, err = cast(mv, target)
                if err is not None:
                    return False, err
            if mv == v:
                return found
        return missing

    return _folded(fn, value, *members)


# ----------------------------------------------------------------------------------------- the tree walk


def _nodes(children: list[Any]) -> list[Node]:
    nodes = [c for c in children if isinstance(c, Node)]
    for node in nodes:
        if node.literal is not None and node.literal > INT32_MAX and node.token is not None:
            raise _error_at(node.token, f"integer literal {node.literal} is outside the 32-bit range")
    return nodes


class _Compiler(Transformer[Token, Node]):
    def __init__(self) -> None:
        super().__init__()
        self.missing_functions: list[str] = []

    # literals and names
    def integer(self, children: list[Token]) -> Node:
        token = children[-1]
        value = int(token)
        # A written '+' ends the literal's chance to be folded into -2147483648.
        node = _constant((value, None)) if value <= INT32_MAX else Node(lambda _: (0, None))
        if len(children) == 1:
            node.literal, node.token = value, token
        elif value > INT32_MAX:
            raise _error_at(token, f"integer literal {value} is outside the 32-bit range")
        return node

    def string(self, children: list[Token]) -> Node:
        return _constant((_unquote(children[0]), None))

    def true(self, _: list[Token]) -> Node:
        return _constant(TRUE)

    def false(self, _: list[Token]) -> Node:
        return _constant(FALSE)

    def _attribute_name(self, token: Token) -> str:
        if not _IDENTIFIER.fullmatch(token):
            raise _error_at(token, f"invalid attribute name {str(token)!r}: CloudEvents attribute names are "
                                   "letters and digits only")
        # Identifiers are case-insensitive like the keywords; CloudEvents names are lower case.
        return str(token).lower()

    def ident(self, children: list[Token]) -> Node:
        name = self._attribute_name(children[0])
        missing: Result = (False, CesqlError(ErrorKind.MISSING_ATTRIBUTE, f"the event has no attribute {name!r}"))

        def fn(a: Attributes) -> Result:
            value = a.get(name)
            if value is None:
                return missing
            kind = type(value)
            if kind is str or kind is int or kind is bool:
                return value, None
            # §3.2: a value of any other type is a String (core.events only makes the three above).
            return _as_string(value), None

        return Node(fn)

    def exists(self, children: list[Token]) -> Node:
        name = self._attribute_name(children[-1])
        if name in REQUIRED:
            return _constant(TRUE)
        return Node(lambda a: TRUE if name in a else FALSE)

    # unary
    def not_(self, children: list[Any]) -> Node:
        [child] = _nodes(children)
        cf = child.fn

        def fn(a: Attributes) -> Result:
            value, err = cf(a)
            if err is not None:
                return False, err
            b, cerr = to_boolean_strict(value)
            return not b, cerr

        return _folded(fn, child)

    def neg(self, children: list[Any]) -> Node:
        child = next(c for c in children if isinstance(c, Node))
        if child.literal is not None:
            if -child.literal < INT32_MIN and child.token is not None:
                raise _error_at(child.token, f"integer literal -{child.literal} is outside the 32-bit range")
            return _constant((-child.literal, None))
        cf = child.fn

        def fn(a: Attributes) -> Result:
            value, err = cf(a)
            if err is not None:
                return 0, err
            i, cerr = (value, None) if type(value) is int else to_integer(value)
            return wrap32(-i), cerr

        return _folded(fn, child)

    # binary
    def _arithmetic(self, name: str, children: list[Any]) -> Node:
        left, right = _nodes(children)
        return _arithmetic(name, left, right)

    def plus(self, c: list[Any]) -> Node:
        return self._arithmetic("plus", c)

    def minus(self, c: list[Any]) -> Node:
        return self._arithmetic("minus", c)

    def times(self, c: list[Any]) -> Node:
        return self._arithmetic("times", c)

    def div(self, c: list[Any]) -> Node:
        return self._arithmetic("div", c)

    def mod(self, c: list[Any]) -> Node:
        return self._arithmetic("mod", c)

    def lt(self, c: list[Any]) -> Node:
        return _ordering("lt", *_nodes(c))

    def le(self, c: list[Any]) -> Node:
        return _ordering("le", *_nodes(c))

    def gt(self, c: list[Any]) -> Node:
        return _ordering("gt", *_nodes(c))

    def ge(self, c: list[Any]) -> Node:
        return _ordering("ge", *_nodes(c))

    def eq(self, c: list[Any]) -> Node:
        return _equality(False, *_nodes(c))

    def ne(self, c: list[Any]) -> Node:
        return _equality(True, *_nodes(c))

    def and_(self, c: list[Any]) -> Node:
        return _logic("and", *_nodes(c))

    def or_(self, c: list[Any]) -> Node:
        return _logic("or", *_nodes(c))

    def xor_(self, c: list[Any]) -> Node:
        return _logic("xor", *_nodes(c))

    # LIKE and IN
    def like(self, c: list[Any]) -> Node:
        return _like(False, _nodes(c)[0], c[-1])

    def not_like(self, c: list[Any]) -> Node:
        return _like(True, _nodes(c)[0], c[-1])

    def set(self, children: list[Any]) -> list[Node]:
        return _nodes(children)

    def in_(self, c: list[Any]) -> Node:
        return _in(False, _nodes(c)[0], c[-1])

    def not_in(self, c: list[Any]) -> Node:
        return _in(True, _nodes(c)[0], c[-1])

    # functions
    def args(self, children: list[Any]) -> list[Node]:
        return _nodes(children)

    def call(self, children: list[Any]) -> Node:
        token: Token = children[0]
        if not _FUNCTION_NAME.fullmatch(token):
            raise _error_at(token, f"invalid function name {str(token)!r}: letters and '_' only, starting "
                                   "with a letter")
        arg_nodes: list[Node] = children[1] if children[1] is not None else []
        function = resolve(str(token), len(arg_nodes))
        name = str(token).upper()
        if function is None:
            self.missing_functions.append(f"{name} with {len(arg_nodes)} argument(s)")
            # §3.5: a call that cannot be dispatched is false with a missingFunction error.
            missing: Result = (False, CesqlError(ErrorKind.MISSING_FUNCTION,
                                                 f"no function {name} takes {len(arg_nodes)} argument(s)"))
            return _constant(missing)
        fns = [n.fn for n in arg_nodes]
        targets = [*function.params, *([function.variadic] * (len(fns) - len(function.params)))]
        plan = list(zip(fns, targets, strict=True))
        impl, zero = function.impl, ZERO[function.returns]

        def fn(a: Attributes) -> Result:
            values: list[Value] = []
            first: CesqlError | None = None
            for arg, target in plan:
                value, err = arg(a)
                if err is not None:
                    return zero, err
                if target is not None and type(value) is not target:
                    value, cerr = cast(value, target)
                    first = first or cerr
                values.append(value)
            result, err = impl(*values)
            return result, first or err

        return _folded(fn, *arg_nodes)


class Expression:
    """A compiled CESQL expression: `evaluate` gives the value and the first error, as the TCK checks."""

    __slots__ = ("_fn", "missing_functions", "text")

    def __init__(self, text: str, fn: Fn, missing_functions: list[str]) -> None:
        self.text = text
        self._fn = fn
        self.missing_functions = missing_functions
        """Calls no built-in answers; evaluation reports missingFunction, `nerve apply` refuses them."""

    def evaluate(self, attributes: Attributes) -> Result:
        return self._fn(attributes)

    def matches(self, attributes: Attributes) -> bool:
        """As a filter (§1.2): only a Boolean true without any error passes."""
        value, err = self._fn(attributes)
        return value is True and err is None

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def compile_expression(text: str) -> Expression:
    """Parse and compile once; raises CesqlParseError naming the line, the column and the problem."""
    tree = parse(text)
    compiler = _Compiler()
    try:
        root = compiler.transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, CesqlParseError):
            raise exc.orig_exc from None
        raise
    [root] = _nodes([root])  # a bare out-of-range literal is caught here
    return Expression(text, root.fn, compiler.missing_functions)
