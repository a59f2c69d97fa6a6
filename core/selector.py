"""Kubernetes label selector matching (`apimachinery/pkg/labels`): does a set of labels satisfy a
LabelSelector {matchLabels, matchExpressions}? Every requirement must hold; an empty selector matches
everything. The selector is assumed valid (control/api/selector.py checks it at admission).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_holds(expr, labels) for expr in selector.get("matchExpressions") or [])


def _holds(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator, values = expr["key"], expr["operator"], expr.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":  # as Kubernetes: a missing key satisfies NotIn
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False
