"""Checks of a Kubernetes LabelSelector in a manifest (`metav1.ValidateLabelSelector`), each problem with
its field path; the matching itself is core/selector.py's.

- `matchLabels`: a map of label keys to label values;
- `matchExpressions[i]`: `key` a label key, `operator` one of In, NotIn, Exists, DoesNotExist; In and
  NotIn need a non-empty `values`, Exists and DoesNotExist must have none (Kubernetes' rules).

A label key is an optional DNS subdomain prefix and `/`, then a name of at most 63 letters, digits,
`-`, `_` and `.` that starts and ends with a letter or digit; a value is empty or such a name.
"""

from __future__ import annotations

import re
from typing import Any

from control.api import schema
from control.api.meta import DNS1123_SUBDOMAIN
from control.api.schema import LEAF, list_of, map_of
from core.errors import FieldError
from core.selector import OPERATORS

SCHEMA = schema.obj({
    "matchLabels": map_of(),
    "matchExpressions": list_of(schema.obj({"key": LEAF, "operator": LEAF, "values": list_of(LEAF)})),
})

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def label_key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not key:
        return "a label key must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"{key!r}: the prefix before '/' must be a DNS subdomain (lower-case letters, digits, '-', '.')"
    if len(name) > 63 or not _NAME.fullmatch(name):
        return (f"{key!r}: a label name is at most 63 letters, digits, '-', '_' or '.', starting and ending "
                "with a letter or digit")
    return None


def label_value_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "a label value must be a string"
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        return (f"{value!r}: a label value is empty or at most 63 letters, digits, '-', '_' or '.', starting "
                "and ending with a letter or digit")
    return None


def validate_selector(selector: Any, path: str) -> list[FieldError]:
    """Every problem of the LabelSelector at `path` ([] for None: no selector)."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [FieldError(path, "must be a label selector: an object with matchLabels and/or matchExpressions")]
    errors: list[FieldError] = []
    labels = selector.get("matchLabels")
    if labels is not None:
        if not isinstance(labels, dict):
            errors.append(FieldError(f"{path}.matchLabels", "must be a map of label keys to values"))
        else:
            for key, value in labels.items():
                problem = label_key_problem(key) or label_value_problem(value)
                if problem:
                    errors.append(FieldError(f"{path}.matchLabels.{key}", problem))
    expressions = selector.get("matchExpressions")
    if expressions is not None:
        if not isinstance(expressions, list):
            errors.append(FieldError(f"{path}.matchExpressions", "must be a list of {key, operator, values}"))
        else:
            for i, expression in enumerate(expressions):
                errors += _expression(expression, f"{path}.matchExpressions[{i}]")
    return errors


def _expression(expression: Any, path: str) -> list[FieldError]:
    if not isinstance(expression, dict):
        return [FieldError(path, "must be an object with key, operator and values")]
    errors: list[FieldError] = []
    problem = label_key_problem(expression.get("key")) if "key" in expression else "required"
    if problem:
        errors.append(FieldError(f"{path}.key", problem))
    operator, values = expression.get("operator"), expression.get("values")
    if operator not in OPERATORS:
        errors.append(FieldError(f"{path}.operator", f"{operator!r} is not a valid selector operator; use "
                                                     f"{', '.join(OPERATORS)}"))
    if values is not None and not isinstance(values, list):
        errors.append(FieldError(f"{path}.values", "must be a list of label values"))
        return errors
    if operator in ("In", "NotIn") and not values:
        errors.append(FieldError(f"{path}.values", f"must be specified when `operator` is {operator}"))
    elif operator in ("Exists", "DoesNotExist") and values:
        errors.append(FieldError(f"{path}.values", f"may not be specified when `operator` is {operator}"))
    for j, value in enumerate(values or ()):
        problem = label_value_problem(value)
        if problem:
            errors.append(FieldError(f"{path}.values[{j}]", problem))
    return errors
