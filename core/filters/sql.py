"""The `cesql` dialect: PASS only when the expression yields the Boolean true without any error.

Anything else fails, a missing attribute included (spec §1.2; Knative's MissingAttributesFeature).
The expression is compiled by core.filters.cesql when the Trigger is; this only asks it.
"""

from __future__ import annotations

from core.filters.base import Attributes, Result
from core.filters.cesql import Expression


class CesqlFilter:
    __slots__ = ("_evaluate",)

    def __init__(self, expression: Expression) -> None:
        self._evaluate = expression.evaluate

    def __call__(self, attributes: Attributes) -> Result:
        value, err = self._evaluate(attributes)
        return Result.PASS if value is True and err is None else Result.FAIL
