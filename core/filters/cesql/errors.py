"""CESQL's error kinds (spec §3.3), spelled as the TCK spells them.

An evaluation error is a value, not an exception: every operator is total and returns its zero value
with the error. Only a parse error is raised, because it stops a Trigger at apply time.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    PARSE = "parse"
    MATH = "math"
    CAST = "cast"
    MISSING_ATTRIBUTE = "missingAttribute"
    MISSING_FUNCTION = "missingFunction"
    FUNCTION_EVALUATION = "functionEvaluation"
    GENERIC = "generic"


class CesqlError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class CesqlParseError(CesqlError):
    """The text is not CESQL; `line` and `column` (1-based) say where, `message` says what."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(ErrorKind.PARSE, message)
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"
