"""What `nerve apply` refuses in a Trigger's filters, each with its field path and the reason.

Mirrors Knative's webhook (trigger_validation.go): attribute names match ^[a-z][a-z0-9]*$, a filter
object sets one dialect only (a dialect with an empty value is not set, as in Knative), nested
`all`/`any`/`not` are validated recursively, and a `cesql` must parse. Nerve is stricter where
Knative's Go types or API server would refuse the YAML anyway (unknown dialect names, values that are
not strings) and in two places where the Trigger could never do what its author meant: an object
with no dialect at all, and a call to a function CESQL does not have. And one limit of its own:
`all`/`any`/`not` nest at most MAX_FILTER_DEPTH levels, because compiling and evaluating a filter
recurses once per level (600 levels were a RecursionError, issue 9, defect 13).
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import FieldError
from core.filters.cesql import CesqlParseError, compile_expression

MAX_FILTER_DEPTH = 100
KEY = re.compile(r"[a-z][a-z0-9]*")  # fullmatch: `$` admits a trailing newline
DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")
_KEY_REASON = "invalid key name: attribute names must start with a lowercase letter and contain only lowercase " \
              "letters and digits (^[a-z][a-z0-9]*$)"


def _attribute_map(mapping: Any, path: str) -> list[FieldError]:
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        return [FieldError(path, "must be a map of attribute names to strings")]
    errors = []
    for key, value in mapping.items():
        if not isinstance(key, str) or not KEY.fullmatch(key):
            errors.append(FieldError(f"{path}.{key}", _KEY_REASON))
        elif not isinstance(value, str):
            errors.append(FieldError(f"{path}.{key}", f"must be a string, not {type(value).__name__}"))
    return errors


def _is_set(value: Any) -> bool:
    # Knative's hasMultipleDialects counts non-empty maps, lists and strings (and a non-nil `not`).
    return value is not None and value != {} and value != [] and value != ""


def _filter_list(value: Any, path: str, depth: int = 0) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [FieldError(path, "must be a list of filter objects")]
    return [error for i, item in enumerate(value) for error in validate_filter(item, f"{path}[{i}]", depth)]


def _cesql(value: Any, path: str) -> list[FieldError]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        return [FieldError(path, "must be a CESQL expression (a string)")]
    # The reason quotes the expression, cut short: a generated one can be tens of kilobytes.
    shown = repr(value) if len(value) <= 120 else repr(value[:100]) + f"... ({len(value)} characters)"
    try:
        expression = compile_expression(value)
    except CesqlParseError as exc:
        return [FieldError(path, f"invalid CESQL expression {shown}: parse error at line {exc.line}, "
                                 f"column {exc.column}: {exc.message}")]
    if expression.missing_functions:
        return [FieldError(path, f"invalid CESQL expression {shown}: unknown function "
                                 f"{expression.missing_functions[0]}")]
    return []


def validate_filter(spec: Any, path: str, depth: int = 0) -> list[FieldError]:
    """One filter object (`spec.filters[i]`, or one nested `depth` levels deep in all/any/not)."""
    if depth > MAX_FILTER_DEPTH:
        return [FieldError(path, f"filters nest more than {MAX_FILTER_DEPTH} levels of all, any and not here; "
                                 "Nerve refuses deeper ones")]
    if not isinstance(spec, dict):
        return [FieldError(path, "must be a filter object with one of: " + ", ".join(DIALECTS))]
    unknown = [key for key in spec if key not in DIALECTS]
    if unknown:
        return [FieldError(f"{path}.{key}", "unknown filter dialect; expected one of: " + ", ".join(DIALECTS))
                for key in unknown]
    if not spec:
        return [FieldError(path, "no dialect set; a filter object needs one of: " + ", ".join(DIALECTS))]
    dialects = [key for key in DIALECTS if (spec.get(key) is not None if key == "not" else _is_set(spec.get(key)))]
    if len(dialects) > 1:
        return [FieldError(path, "multiple dialects found, filters can have only one dialect set "
                                 f"(found {', '.join(dialects)})")]
    errors: list[FieldError] = []
    for dialect in ("exact", "prefix", "suffix"):
        errors += _attribute_map(spec.get(dialect), f"{path}.{dialect}")
    for dialect in ("all", "any"):
        errors += _filter_list(spec.get(dialect), f"{path}.{dialect}", depth + 1)
    if spec.get("not") is not None:
        errors += validate_filter(spec["not"], f"{path}.not", depth + 1)
    errors += _cesql(spec.get("cesql"), f"{path}.cesql")
    return errors


def validate_trigger_filters(filter_attributes: Any, filters: Any, path: str = "spec") -> list[FieldError]:
    """Every problem in `<path>.filter.attributes` and `<path>.filters`; [] when both are valid."""
    errors = _attribute_map(filter_attributes, f"{path}.filter.attributes")
    if filters is not None:
        if not isinstance(filters, list):
            errors.append(FieldError(f"{path}.filters", "must be a list of filter objects"))
        else:
            errors += _filter_list(filters, f"{path}.filters")
    return errors
