"""CESQL's error kinds, as the TCK names them."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    PARSE = "parse"
    MATH = "math"
    CAST = "cast"
    MISSING_ATTRIBUTE = "missingAttribute"
    MISSING_FUNCTION = "missingFunction"
    FUNCTION_EVALUATION = "functionEvaluation"


class CesqlError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class CesqlParseError(CesqlError):
    """The expression is not CESQL; `line`/`column` say where (1-based)."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(ErrorKind.PARSE, message)
        self.line = line
        self.column = column
