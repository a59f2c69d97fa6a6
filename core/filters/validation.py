"""What `nerve apply` refuses in a Trigger's filters, with the field path and the reason."""

from __future__ import annotations

import re
from typing import Any

from core.errors import FieldError
from core.filters.cesql import CesqlParseError, compile_expression

KEY = re.compile(r"^[a-z][a-z0-9]*$")
DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")


def _keys(mapping: Any, path: str) -> list[FieldError]:
    if not isinstance(mapping, dict):
        return [FieldError(path, "must be a map of attribute names to strings")]
    errors = []
    for key, value in mapping.items():
        if not isinstance(key, str) or not KEY.match(key):
            errors.append(FieldError(f"{path}.{key}", "invalid key: attribute names must match ^[a-z][a-z0-9]*$"))
        elif not isinstance(value, str):
            errors.append(FieldError(f"{path}.{key}", "must be a string"))
    return errors


def validate_dialect(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [FieldError(path, "a filter must be an object with one of " + ", ".join(DIALECTS))]
    unknown = [key for key in spec if key not in DIALECTS]
    if unknown:
        return [FieldError(f"{path}.{key}", f"unknown dialect; expected one of {', '.join(DIALECTS)}")
                for key in unknown]
    present = [key for key in DIALECTS if key in spec]
    if len(present) > 1:
        return [FieldError(path, f"multiple dialects found ({', '.join(present)}), filters can have only one "
                                 "dialect set")]
    if not present:
        return [FieldError(path, "no dialect set; expected one of " + ", ".join(DIALECTS))]
    dialect = present[0]
    value = spec[dialect]
    where = f"{path}.{dialect}"
    if dialect in ("exact", "prefix", "suffix"):
        return _keys(value, where)
    if dialect in ("all", "any"):
        if not isinstance(value, list) or not value:
            return [FieldError(where, "must be a non-empty list of filters")]
        return [e for i, item in enumerate(value) for e in validate_dialect(item, f"{where}[{i}]")]
    if dialect == "not":
        return validate_dialect(value, where)
    if not isinstance(value, str) or not value.strip():
        return [FieldError(where, "must be a CESQL expression")]
    try:
        expression = compile_expression(value)
    except CesqlParseError as exc:
        return [FieldError(where, f"parse error at line {exc.line}, column {exc.column}: {exc.message}")]
    if expression.missing_functions:
        return [FieldError(where, f"unknown function {expression.missing_functions[0]}")]
    return []


def validate_trigger_filters(filter_attributes: Any, filters: Any, path: str = "spec") -> list[FieldError]:
    errors: list[FieldError] = []
    if filter_attributes is not None:
        errors += _keys(filter_attributes, f"{path}.filter.attributes")
    if filters is not None:
        if not isinstance(filters, list):
            return [*errors, FieldError(f"{path}.filters", "must be a list of filters")]
        for i, item in enumerate(filters):
            errors += validate_dialect(item, f"{path}.filters[{i}]")
    return errors
