"""Known fields as data: a schema tree per kind, walked over a manifest to find what Nerve would not read.

A `Node` says what may appear at one place of a manifest:

    obj({"broker": LEAF, "delivery": DELIVERY})   an object with exactly these fields
    list_of(node)                                 a list whose items are `node`
    map_of(node)                                  a map with any keys whose values are `node`
    LEAF / OPEN                                   a scalar / anything at all (not looked into)
    unimplemented(node, why)                      Knative defines it; Nerve accepts it but does not do it

`check(manifest, schema)` returns one `FieldNotice` per field the schema does not know (kubectl's
`unknown field "spec.brokr"`) and per unimplemented field that is present (a warning saying what Nerve
does not do). Types and values are not the schema's business: each kind's validator checks them, so
the walk only descends where the value has the shape the schema expects.

The trees follow the Knative API reference (../shared/reference/knative-spec.md): DeliverySpec,
Destination, KReference, the Source duck, Broker, Trigger and KafkaSource.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _could_find(node: Node) -> bool:
    """Whether walking a value under `node` can find anything (LEAF and OPEN nodes find nothing)."""
    return bool(node.unimplemented) or (not node.open and (node.fields is not None or node.items is not None
                                                           or node.values is not None))


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    fields: dict[str, Node] | None = None
    """The known fields of an object; None when this node is not an object with fixed fields."""
    items: Node | None = None
    values: Node | None = None
    open: bool = False
    unimplemented: str = ""
    """Why Nerve does not act on this field (shown as a warning when the field is set)."""
    worth: bool = field(init=False, default=False)
    """Whether the walk looks at a value here: `_could_find` or unimplemented, made once with the node (the walk
    asked it of every field of every manifest, 120,000 calls for 10,000 Triggers)."""
    looks_inside: bool = field(init=False, default=False)
    """`_could_find`, made once with the node."""

    def __post_init__(self) -> None:
        could = _could_find(self)
        object.__setattr__(self, "looks_inside", could)
        object.__setattr__(self, "worth", bool(self.unimplemented) or could)


LEAF = Node()
OPEN = Node(open=True)


def obj(fields: Mapping[str, Node]) -> Node:
    return Node(fields=dict(fields))


def list_of(node: Node) -> Node:
    return Node(items=node)


def map_of(node: Node = LEAF) -> Node:
    return Node(values=node)


def unimplemented(node: Node, why: str) -> Node:
    return Node(fields=node.fields, items=node.items, values=node.values, open=node.open, unimplemented=why)


def extend(node: Node, more: Mapping[str, Node]) -> Node:
    """`node` (an object) with more fields, e.g. a kind's spec on top of a duck type."""
    return Node(fields={**(node.fields or {}), **more}, unimplemented=node.unimplemented)


@dataclass(frozen=True, slots=True)
class FieldNotice:
    """A field the schema does not know (`unknown`) or knows but Nerve does not implement."""

    path: str
    message: str
    unknown: bool = field(default=False)
    resource: str = ""
    """Which manifest, when a request held several (e.g. "Trigger/ns1/t1")."""

    def __str__(self) -> str:
        return f"{self.resource}: {self.message}" if self.resource else self.message

    def to_json(self) -> dict[str, str]:
        return {"field": self.path, "message": self.message, **({"resource": self.resource} if self.resource else {})}


def not_implemented(path: str, why: str) -> FieldNotice:
    return FieldNotice(path, f'field "{path}" is accepted but not implemented by Nerve: {why}')


MAX_DEPTH = 64
"""How deeply a manifest may nest objects and lists. Knative's own types nest a handful of levels; a
Trigger's `all`/`any`/`not` filters take two per level, so this leaves room for ~30 nested filters while
keeping every recursive walk (this schema's, the validators', deepcopy, JSON) far from Python's limit."""


def too_deep(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """The path of the first value nested deeper than `limit`, or None. Iterative, so any depth is safe.
    Depths alone first (every manifest of an apply is checked: no path is built for one that passes), the
    path only for one that does not."""
    if _within(value, limit):
        return None
    return _first_too_deep(value, limit)


def _within(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth >= limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def _first_too_deep(value: Any, limit: int) -> str | None:
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        current, path, depth = stack.pop()
        if isinstance(current, dict):
            children: list[tuple[Any, str]] = [(v, f"{path}.{k}" if path else str(k)) for k, v in current.items()]
        elif isinstance(current, list):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(current)]
        else:
            continue
        if depth >= limit:
            return path
        stack.extend((child, child_path, depth + 1) for child, child_path in reversed(children))
    return None


def check(value: Any, node: Node, path: str = "", *, prune: bool = False) -> list[FieldNotice]:
    """The notices for `value`; with `prune`, unknown fields are also removed from it (as the Kubernetes
    API server prunes fields a CRD's schema does not know), so they are never stored."""
    notices: list[FieldNotice] = []
    _walk(value, node, path, notices, prune)
    return notices


def _walk(value: Any, node: Node, path: str, out: list[FieldNotice], prune: bool) -> None:
    if node.unimplemented and path:
        out.append(not_implemented(path, node.unimplemented))
        return
    if node.open:
        return
    # A child is walked (and its path made) only where the walk can find something: an unimplemented field,
    # or an object or list under a node that looks into it. Every manifest of an apply is walked twice.
    if node.fields is not None and isinstance(value, dict):
        for key, child in list(value.items()):
            known = node.fields.get(str(key))
            if known is None:
                child_path = f"{path}.{key}" if path else str(key)
                out.append(FieldNotice(child_path, f'unknown field "{child_path}"', unknown=True))
                if prune:
                    del value[key]
            elif known.worth and (known.unimplemented or isinstance(child, (dict, list))):  # _worth_walking
                _walk(child, known, f"{path}.{key}" if path else str(key), out, prune)
    elif node.items is not None and isinstance(value, list):
        if node.items.looks_inside:
            for i, item in enumerate(value):
                if _worth_walking(item, node.items):
                    _walk(item, node.items, f"{path}[{i}]", out, prune)
    elif node.values is not None and isinstance(value, dict) and node.values.looks_inside:
        for key, child in value.items():
            if _worth_walking(child, node.values):
                _walk(child, node.values, f"{path}.{key}", out, prune)


def _worth_walking(value: Any, node: Node) -> bool:
    # An unimplemented node reports the field whatever its value; any other looks only into objects and lists.
    return bool(node.unimplemented) or (isinstance(value, dict | list) and _could_find(node))


# ------------------------------------------------------------------------------ shared Knative types

# ObjectMeta: what a user may write; the server-owned fields are accepted and replaced by Nerve.
METADATA = obj({
    "name": LEAF, "namespace": LEAF, "labels": map_of(), "annotations": map_of(),
    "uid": LEAF, "resourceVersion": LEAF, "generation": LEAF, "creationTimestamp": LEAF, "selfLink": LEAF,
    "managedFields": OPEN,
    "generateName": LEAF,  # a name is made from it on create (meta.with_generated_name)
    "finalizers": unimplemented(OPEN, "finalizers are not run; a delete removes the resource at once"),
    "ownerReferences": OPEN,  # garbage-collected with its owners (control/reconcilers/garbage.py)
    "deletionTimestamp": LEAF, "deletionGracePeriodSeconds": LEAF,
})

KREFERENCE = obj({
    "apiVersion": LEAF, "kind": LEAF, "name": LEAF, "namespace": LEAF,
    "group": unimplemented(LEAF, "refs are resolved by apiVersion and kind"),
    "address": LEAF,  # the name of one of the resource's status.addresses (control/resolver.py)
})

DESTINATION = obj({
    "ref": KREFERENCE, "uri": LEAF,
    "CACerts": LEAF,  # verified against by the sender (core/tls.py)
    "audience": LEAF,  # the token the sender sends there is for this audience (authentication-oidc)
})


def delivery(*, format_implemented: bool = True) -> Node:
    """DeliverySpec (`ev:pkg/apis/duck/v1/delivery_types.go`)."""
    fmt = LEAF if format_implemented else unimplemented(LEAF, "events are delivered in binary mode")
    return obj({
        "deadLetterSink": DESTINATION, "retry": LEAF, "backoffPolicy": LEAF, "backoffDelay": LEAF,
        "timeout": LEAF, "retryAfterMax": LEAF, "format": fmt,
    })


DELIVERY = delivery()


def resource(spec: Node | None, **top: Node) -> Node:
    """A whole manifest: apiVersion, kind, metadata, status (server-owned), the spec and other top fields."""
    fields: dict[str, Node] = {"apiVersion": LEAF, "kind": LEAF, "metadata": METADATA, "status": OPEN, **top}
    if spec is not None:
        fields["spec"] = spec
    return obj(fields)
