"""Kubernetes' LabelSelector (`metav1.LabelSelector`), as SinkBinding subjects and ApiServerSource resources
write it: `matchLabels` (key: value, all must match) and `matchExpressions` ({key, operator, values}, with
operators In, NotIn, Exists, DoesNotExist). The checks are the API server's
(`apimachinery/pkg/apis/meta/v1/validation.ValidateLabelSelector`); matching is core/selector.py's.
"""

from __future__ import annotations

from typing import Any

from control.api import schema
from control.api.schema import LEAF, list_of, map_of
from core.errors import FieldError
from core.selector import OPERATORS

SCHEMA = schema.obj({
    "matchLabels": map_of(),
    "matchExpressions": list_of(schema.obj({"key": LEAF, "operator": LEAF, "values": list_of(LEAF)})),
})


def validate_selector(value: Any, path: str) -> list[FieldError]:
    """Every problem of a LabelSelector at `path`, each naming its field."""
    if not isinstance(value, dict):
        return [FieldError(path, "must be an object with matchLabels and/or matchExpressions")]
    errors: list[FieldError] = []
    labels = value.get("matchLabels")
    if labels is not None and (not isinstance(labels, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in labels.items())):
        errors.append(FieldError(f"{path}.matchLabels", "must be a map of label keys to string values"))
    expressions = value.get("matchExpressions")
    if expressions is None:
        return errors
    if not isinstance(expressions, list):
        return [*errors, FieldError(f"{path}.matchExpressions", "must be a list of {key, operator, values}")]
    for i, expr in enumerate(expressions):
        errors += _validate_expression(expr, f"{path}.matchExpressions[{i}]")
    return errors


def _validate_expression(expr: Any, path: str) -> list[FieldError]:
    if not isinstance(expr, dict):
        return [FieldError(path, "must be an object with key, operator and values")]
    errors: list[FieldError] = []
    if not isinstance(expr.get("key"), str) or not expr["key"]:
        errors.append(FieldError(f"{path}.key", "required"))
    operator, values = expr.get("operator"), expr.get("values")
    if operator not in OPERATORS:
        return [*errors, FieldError(f"{path}.operator", f"{operator!r}: supported values are "
                                                        f"{', '.join(OPERATORS)}")]
    if values is not None and (not isinstance(values, list) or not all(isinstance(v, str) for v in values)):
        return [*errors, FieldError(f"{path}.values", "must be a list of strings")]
    if operator in ("In", "NotIn") and not values:
        errors.append(FieldError(f"{path}.values", f"must be specified when `operator` is '{operator}'"))
    if operator in ("Exists", "DoesNotExist") and values:
        errors.append(FieldError(f"{path}.values", f"may not be specified when `operator` is '{operator}'"))
    return errors
