"""CESQL parse tree -> one Python closure per expression, built once; evaluation never parses again.

Every node compiles to `fn(attributes) -> (value, error | None)`. Evaluation is total, as spec §3.3
asks: an operand's error makes its operator return the operator's zero value with that error (so
`1 / missing` is 0 with a missingAttribute error, not a math error), and a failed implicit cast goes
on with the target's zero value and reports a cast error. AND and OR short-circuit. A sub-tree that
does not read the event is evaluated at compile time, and the closures below specialise the common
shapes (a constant on the right of `=`, a LIKE pattern that is a plain prefix or suffix, an IN over
literals) because this runs once per event per Trigger.

How long one evaluation can take (issue 9, defect 5: a filter runs on the event loop, so a slow one
freezes the process). Every operator and built-in function is linear in the sizes of its operands:
LIKE never backtracks (_like_matcher: O(value x longest segment of the pattern)), casts to Integer
look at no more than 11 digits, and the string functions are single passes. A function result is at
most as long as its inputs together (CONCAT) or three times its input (LOWER/UPPER, by Unicode case
mapping), so a value can only grow by the event text the expression itself reads. One evaluation is
therefore O(size of the expression x nesting depth x bytes of the event): linear in what the
producer sends, with a factor the Trigger's author wrote and admission bounds (MAX_DEPTH). Nothing
the producer controls is super-linear, which is why there is no time budget per evaluation.

Neither compiling nor evaluating recurses per operator of a flat chain: the tree is walked with
explicit stacks (_Compiler.walk), a run of left-associative, postfix or prefix operators is one loop
(_chain) and a run of AND/OR/XOR is one loop (_logic). Real nesting, such as f(f(f(x))) or
(a + (b + ...)), recurses once per level when evaluated and is refused past MAX_DEPTH levels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from lark import Token, Tree

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
Step = Callable[[Result, Attributes], Result]
"""One operator of a spine, given its left operand's result (see _chain)."""

MAX_DEPTH = 200
"""Operators, calls and sub-expressions inside one another that one expression may nest. Evaluation
recurses once (at most twice) per level, so this keeps it far below Python's limit of 1,000 frames
wherever it runs; flat chains (a OR b OR ..., a + b + ..., NOT NOT ...) are loops and do not count."""

# A valid event always carries these, so EXISTS is true for them whatever the mapping holds (§3.4.4).
REQUIRED = frozenset({"specversion", "id", "source", "type"})
_IDENTIFIER = re.compile(r"[a-zA-Z0-9]+")
_FUNCTION_NAME = re.compile(r"[a-zA-Z][a-zA-Z_]*")
_NO_EVENT: Mapping[str, Any] = {}
TRUE: Result = (True, None)
FALSE: Result = (False, None)


class Node:
    __slots__ = ("const", "depth", "fn", "literal", "token")

    def __init__(self, fn: Fn, const: Result | None = None, literal: int | None = None,
                 token: Token | None = None) -> None:
        self.fn = fn
        self.const = const
        """The result, when it does not depend on the event."""
        self.literal = literal
        """An unsigned integer literal as written, so a leading '-' can fold it (-2147483648)."""
        self.token = token
        self.depth = 1
        """How many closures deep evaluating it recurses; a constant is one, whatever it was folded from."""


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


def _arithmetic(name: str, right: Node) -> Step:
    op, divides = _ARITHMETIC[name]
    rf = right.fn

    def step(left: Result, a: Attributes) -> Result:
        lv, err = left
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

    return step


_ORDERING: dict[str, Callable[[int, int], bool]] = {
    "lt": lambda x, y: x < y, "le": lambda x, y: x <= y, "gt": lambda x, y: x > y, "ge": lambda x, y: x >= y,
}


def _ordering(name: str, right: Node) -> Step:
    # < <= > >= exist for Integer x Integer only: both operands are cast to Integer (§3.4.2).
    op = _ORDERING[name]
    rf = right.fn

    def step(left: Result, a: Attributes) -> Result:
        lv, err = left
        if err is not None:
            return False, err
        rv, err = rf(a)
        if err is not None:
            return False, err
        x, xerr = (lv, None) if type(lv) is int else to_integer(lv)
        y, yerr = (rv, None) if type(rv) is int else to_integer(rv)
        return op(x, y), xerr or yerr

    return step


def _equality(negate: bool, right: Node) -> Step:
    # '=' is defined for three pairs of equal types; the right operand's type picks one and the left
    # operand is cast to it (§3.7, ambiguous binary operators).
    rf = right.fn
    if right.const is not None and right.const[1] is None:
        wanted = right.const[0]
        target = type(wanted)

        def against_constant(left: Result, a: Attributes) -> Result:
            lv, err = left
            if err is not None:
                return False, err
            if type(lv) is not target:
                lv, err = cast(lv, target)
                if err is not None:
                    return False, err
            return TRUE if (lv == wanted) is not negate else FALSE

        return against_constant

    def step(left: Result, a: Attributes) -> Result:
        lv, err = left
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

    return step


def _not(left: Result, _: Attributes) -> Result:
    value, err = left
    if err is not None:
        return False, err
    b, cerr = to_boolean_strict(value)
    return not b, cerr


def _neg(left: Result, _: Attributes) -> Result:
    value, err = left
    if err is not None:
        return 0, err
    i, cerr = (value, None) if type(value) is int else to_integer(value)
    return wrap32(-i), cerr


def _chain(base: Node, steps: list[tuple[Step, list[Node]]]) -> Node:
    """`base`, then each step applied to the result so far, in a loop: a spine of left-associative
    operators (`a + b + c`, `x = 1 = TRUE`), postfix LIKE/IN or prefix NOT/- is as long as it is
    written, and a nested closure per step would recurse that deep at every evaluation. The steps
    whose operands (each step's list) are all constants are applied now."""
    done = 0
    if base.const is not None:
        acc = base.const
        for step, operands in steps:
            if any(n.const is None for n in operands):
                break
            acc = step(acc, _NO_EVENT)
            done += 1
        if done == len(steps):
            return _constant(acc)
        if done:
            base = _constant(acc)
    rest = [step for step, _ in steps[done:]]
    bf = base.fn
    if len(rest) == 1:
        [only] = rest
        return Node(lambda a: only(bf(a), a))

    def fn(a: Attributes) -> Result:
        acc = bf(a)
        for step in rest:
            acc = step(acc, a)
        return acc

    return Node(fn)


# ----------------------------------------------------------------------------------------- logic


def _boolean(value: Value) -> tuple[bool, CesqlError | None]:
    return (value, None) if value is True or value is False else to_boolean(value)


def _logic(kinds: list[str], operands: list[Node]) -> Node:
    """`x0 k0 x1 k1 x2 ...`, which groups to the right (x0 k0 (x1 k1 (x2 ...))), in one loop.

    Left to right, each operand either settles its level (AND meets false, OR meets true, or an
    error) or leaves the level pending; then the pending levels are closed innermost first. This is
    what the nested two-operand form computes, short circuits included, without recursing once per
    term: 1,000 ORs are one flat chain (issue 9, defect 13).
    """
    fns = [n.fn for n in operands]
    last = len(fns) - 1

    def fn(a: Attributes) -> Result:
        pending: list[tuple[str, bool, CesqlError | None]] = []
        for i in range(last):
            kind = kinds[i]
            lv, err = fns[i](a)
            if err is not None:
                result: Result = (False, err)
                break
            x, xerr = _boolean(lv)
            if kind == "and" and not x:
                result = (False, xerr)
                break
            if kind == "or" and x:
                result = (True, xerr)
                break
            pending.append((kind, x, xerr))
        else:
            result = fns[last](a)
        while pending:
            kind, x, xerr = pending.pop()
            rv, err = result
            if err is not None:
                result = (False, err)
                continue
            y, yerr = _boolean(rv)
            result = (x is not y if kind == "xor" else y, xerr or yerr)
        return result

    return _folded(_logic_pair(kinds[0], fns[0], fns[1]) if len(fns) == 2 else fn, *operands)


def _logic_pair(kind: str, lf: Fn, rf: Fn) -> Fn:
    """The common two-operand case without the loop's bookkeeping (this runs per event per Trigger)."""

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

    return {"and": fn_and, "or": fn_or, "xor": fn_xor}[kind]


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


def _like(negate: bool, pattern: Token) -> Step:
    matches = _like_matcher(_unquote(pattern))

    def step(left: Result, _: Attributes) -> Result:
        v, err = left
        if err is not None:
            return False, err
        # LIKE is String x String: a non-String left operand is cast (§3.4.3), which cannot fail.
        return TRUE if matches(v if type(v) is str else to_string(v)) is not negate else FALSE

    return step


def _in(negate: bool, members: list[Node]) -> Step:
    # The left operand's type is the target every member is cast to (§3.7, IN).
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

        def against_constants(left: Result, _: Attributes) -> Result:
            v, err = left
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

        return against_constants

    fns = [m.fn for m in members]

    def step(left: Result, a: Attributes) -> Result:
        v, err = left
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

    return step


# ----------------------------------------------------------------------------------------- the tree walk

# Rules whose operand is their first child (left-associative binary operators, postfix LIKE and IN)
# or their last (prefix NOT and -): a run of them is one spine, compiled to one loop (_chain).
_LEFT_LINKS = frozenset({"plus", "minus", "times", "div", "mod", "eq", "ne", "lt", "le", "gt", "ge",
                         "like", "not_like", "in_", "not_in"})
_PREFIX_LINKS = frozenset({"not_", "neg"})
_LINKS = _LEFT_LINKS | _PREFIX_LINKS
_LOGIC = {"and_": "and", "or_": "or", "xor_": "xor"}


class _Build:
    """A work item of the walk: call `build` with the last `count` results, for `tree`."""

    __slots__ = ("build", "count", "tree")

    def __init__(self, build: Callable[[list[Any]], Any], count: int, tree: Tree[Token]) -> None:
        self.build, self.count, self.tree = build, count, tree


def _operand(tree: Tree[Token]) -> Any:
    return tree.children[0] if tree.data in _LEFT_LINKS else tree.children[-1]


def _child_depth(values: list[Any]) -> int:
    depth = 0
    for value in values:
        if isinstance(value, Node):
            depth = max(depth, value.depth)
        elif isinstance(value, list):
            depth = max([depth, *(m.depth for m in value if isinstance(m, Node))])
    return depth


def _nodes(children: list[Any]) -> list[Node]:
    nodes = [c for c in children if isinstance(c, Node)]
    for node in nodes:
        if node.literal is not None and node.literal > INT32_MAX and node.token is not None:
            raise _error_at(node.token, f"integer literal {node.literal} is outside the 32-bit range")
    return nodes


class _Compiler:
    def __init__(self) -> None:
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

    def walk(self, root: Tree[Token]) -> Node:
        """Compile the tree bottom-up with explicit stacks: no recursion, however long or deep it is.

        (lark's Transformer recurses once per tree level; 1,000 ORs made a RecursionError, which the
        control API answered with a 500: issue 9, defect 13.)
        """
        results: list[Any] = []
        work: list[Any] = [root]
        while work:
            item = work.pop()
            if isinstance(item, _Build):
                values = results[len(results) - item.count:]
                del results[len(results) - item.count:]
                value = item.build(values)
                if isinstance(value, Node) and value.const is None:
                    value.depth = 1 + _child_depth(values)
                    if value.depth > MAX_DEPTH:
                        raise CesqlParseError(
                            f"the expression nests more than {MAX_DEPTH} operators, function calls or "
                            "parenthesised sub-expressions inside one another here; Nerve refuses deeper ones "
                            "(a flat chain such as a OR b OR c does not count)",
                            getattr(item.tree.meta, "line", 1), getattr(item.tree.meta, "column", 1))
                results.append(value)
            elif isinstance(item, Tree):
                build, parts = self._plan(item)
                work.append(_Build(build, len(parts), item))
                work.extend(reversed(parts))
            else:  # a token, or None for an empty [args]
                results.append(item)
        [node] = _nodes(results)  # a bare out-of-range literal is caught here
        return node

    def _plan(self, tree: Tree[Token]) -> tuple[Callable[[list[Any]], Any], list[Any]]:
        """What to compile first (the children, or a whole spine's operands) and how to combine them."""
        if tree.data in _LOGIC:
            kinds: list[str] = []
            operands: list[Any] = []
            node: Any = tree
            while isinstance(node, Tree) and node.data in _LOGIC:  # groups to the right
                kinds.append(_LOGIC[node.data])
                operands.append(node.children[0])
                node = node.children[-1]
            operands.append(node)
            return (lambda values: self.logic(kinds, values)), operands
        if tree.data in _LINKS:
            spine: list[Tree[Token]] = []
            node = tree
            while isinstance(node, Tree) and node.data in _LINKS:
                spine.append(node)
                node = _operand(node)
            spine.reverse()  # innermost first: the order the operators apply in
            parts: list[Any] = [node]
            sizes: list[int] = []
            for link in spine:
                rest = link.children[1:] if link.data in _LEFT_LINKS else link.children[:-1]
                parts.extend(rest)
                sizes.append(len(rest))

            def build(values: list[Any]) -> Node:
                links, at = [], 1
                for link, size in zip(spine, sizes, strict=True):
                    links.append((str(link.data), values[at:at + size]))
                    at += size
                return self.spine(values[0], links)

            return build, parts
        method: Callable[[list[Any]], Any] = getattr(self, str(tree.data))
        return method, list(tree.children)

    # spines: operators whose operand is itself an operator of the same shape fold into one loop
    def spine(self, base: Node, links: list[tuple[str, list[Any]]]) -> Node:
        """`base` with `links` applied innermost first, each link an operator and its other children."""
        if links and links[0][0] == "neg" and base.literal is not None:
            # '-2147483648' is one literal: the minus folds into it before the range check.
            if -base.literal < INT32_MIN and base.token is not None:
                raise _error_at(base.token, f"integer literal -{base.literal} is outside the 32-bit range")
            base, links = _constant((-base.literal, None)), links[1:]
        [base] = _nodes([base])
        steps: list[tuple[Step, list[Node]]] = []
        for kind, rest in links:
            if kind in _ARITHMETIC:
                [right] = _nodes(rest)
                steps.append((_arithmetic(kind, right), [right]))
            elif kind in _ORDERING:
                [right] = _nodes(rest)
                steps.append((_ordering(kind, right), [right]))
            elif kind in ("eq", "ne"):
                [right] = _nodes(rest)
                steps.append((_equality(kind == "ne", right), [right]))
            elif kind in ("like", "not_like"):
                steps.append((_like(kind == "not_like", rest[-1]), []))
            elif kind in ("in_", "not_in"):
                members: list[Node] = rest[-1]
                steps.append((_in(kind == "not_in", members), members))
            else:
                steps.append((_not if kind == "not_" else _neg, []))
        return _chain(base, steps)

    def logic(self, kinds: list[str], operands: list[Node]) -> Node:
        return _logic(kinds, _nodes(operands))

    def set(self, children: list[Any]) -> list[Node]:
        return _nodes(children)

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
    compiler = _Compiler()
    root = compiler.walk(parse(text))
    return Expression(text, root.fn, compiler.missing_functions)
