"""CloudEvents SQL v1: parse (parser.py, grammar.lark) and compile (compiler.py) once, evaluate per event."""

from core.filters.cesql.compiler import Expression, compile_expression
from core.filters.cesql.errors import CesqlError, CesqlParseError, ErrorKind

__all__ = ["CesqlError", "CesqlParseError", "ErrorKind", "Expression", "compile_expression"]
