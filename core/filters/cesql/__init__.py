"""CloudEvents SQL v1: compile an expression once, evaluate it per event. See compiler.py."""

from core.filters.cesql.compiler import Expression, compile_expression
from core.filters.cesql.errors import CesqlError, CesqlParseError, ErrorKind

__all__ = ["CesqlError", "CesqlParseError", "ErrorKind", "Expression", "compile_expression"]
