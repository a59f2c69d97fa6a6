"""CESQL text -> lark parse tree, or a CesqlParseError that says where and what went wrong.

The grammar lives in grammar.lark; lark's LALR parser builds it once per process. LALR keeps its
stacks in lists and builds the tree as it reduces, so a long expression never recurses here; the
positions it propagates let the compiler say where an expression nests too deeply. The error text is
what `nerve apply` shows a Trigger author, so lark's terminal names are turned back into the
characters they stand for.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from core.filters.cesql.errors import CesqlParseError

_SHOWN = {
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "EQ": "'='", "NE": "'!='", "LT": "'<'", "LE": "'<='",
    "GT": "'>'", "GE": "'>='", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'",
    "PERCENT": "'%'", "INT": "an integer", "STRING": "a string literal", "NAME": "a name",
    "TRUE": "TRUE", "FALSE": "FALSE", "AND": "AND", "OR": "OR", "XOR": "XOR", "NOT": "NOT", "LIKE": "LIKE",
    "IN": "IN", "EXISTS": "EXISTS",
}


@cache
def _lark() -> Lark:
    grammar = Path(__file__).with_name("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", maybe_placeholders=True, propagate_positions=True)


def _expected(names: set[str] | frozenset[str]) -> str:
    if "NAME" in names:
        return "; expected a value (a literal, an attribute, a function call or a parenthesised expression)"
    shown = sorted({_SHOWN.get(name, name) for name in names if name != "$END"})
    if not shown:
        return ""
    if len(shown) > 6:
        return "; expected an operator" + (" or ')'" if "RPAR" in names else "")
    return "; expected " + ", ".join(shown)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def parse(text: str) -> Tree[Token]:
    """The parse tree of one expression; raises CesqlParseError (1-based line and column)."""
    if not text.strip():
        raise CesqlParseError("the expression is empty")
    try:
        return _lark().parse(text)
    except UnexpectedCharacters as exc:
        pos = exc.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        what = "unterminated string literal" if char in "'\"" else f"unexpected character {char!r}"
        raise CesqlParseError(what, exc.line, exc.column) from None
    except UnexpectedEOF as exc:
        line, column = _end_position(text)
        raise CesqlParseError("unexpected end of expression" + _expected(set(exc.expected)), line, column) from None
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            line, column = _end_position(text)
            raise CesqlParseError("unexpected end of expression" + _expected(exc.expected), line, column) from None
        raise CesqlParseError(f"unexpected {exc.token.value!r}" + _expected(exc.expected), exc.line,
                              exc.column) from None
    except UnexpectedInput as exc:  # any other lark complaint still carries a position
        raise CesqlParseError("invalid expression", exc.line, exc.column) from None
