"""Kubernetes label selectors (`metav1.LabelSelector`): matchLabels and matchExpressions, matched as the
API server matches them (`k8s.io/apimachinery/pkg/labels`).

Every requirement must hold (AND): `matchLabels {k: v}` and `In` need the label with one of the values,
`NotIn` is true when the label is absent or has another value, `Exists` / `DoesNotExist` look at the key
only. A selector with no requirements (`{}`) matches every object.

Shared by everything that selects by labels: ApiServerSource's resources[].selector and namespaceSelector,
SinkBinding's subject, a v1 Service's selector (a plain map: `LabelSelector.of_labels`). The manifest is
checked first by control/api/selector.py; `from_json` assumes a checked one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values

    def __str__(self) -> str:
        """The API server's text form: `app=x`, `env in (a,b)`, `env notin (c)`, `tier`, `!tier`."""
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        values = sorted(self.values)
        if self.operator == "In" and len(values) == 1:
            return f"{self.key}={values[0]}"
        return f"{self.key} {self.operator.lower()} ({','.join(values)})"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def from_json(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """From `{matchLabels: {...}, matchExpressions: [{key, operator, values}]}` (checked already)."""
        if not selector:
            return cls()
        found = [Requirement(str(k), "In", frozenset({str(v)}))
                 for k, v in (selector.get("matchLabels") or {}).items()]
        for expression in selector.get("matchExpressions") or ():
            found.append(Requirement(str(expression["key"]), expression["operator"],
                                     frozenset(str(v) for v in expression.get("values") or ())))
        return cls(tuple(sorted(found, key=lambda r: (r.key, r.operator))))

    @classmethod
    def of_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        """A v1 Service's or a Deployment's plain `selector: {app: x}`: every label must equal its value."""
        return cls.from_json({"matchLabels": dict(labels)})

    @property
    def everything(self) -> bool:
        """True for `{}`: no requirement, every object matches."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the API server gives every Namespace (its name), so a selector can pick namespaces by name."""


def namespace_labels(name: str, namespace: Mapping[str, Any] | None) -> dict[str, str]:
    """The labels a namespaceSelector is matched against: the Namespace object's (None when Nerve has no
    Namespace object of that name, only objects in it) plus `kubernetes.io/metadata.name`."""
    labels = dict(((namespace or {}).get("metadata") or {}).get("labels") or {})
    labels[NAMESPACE_NAME_LABEL] = name
    return labels
