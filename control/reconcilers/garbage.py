"""Owner references: a generated child goes with its owner (the Kubernetes garbage collector's rule).

A child names its owners in `metadata.ownerReferences` (apiVersion, kind, name, uid). Once none of
the uids it names exists any more, the child is deleted too ("background" cascading deletion: the
owner goes first, its children after it, each through its own finalizers). An owner that is being
deleted still exists: its children wait until its clean-up is done.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from control.store.base import is_deleting


def owner_uids(obj: dict[str, Any]) -> set[str]:
    return {str(ref.get("uid")) for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid")}


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Whether `obj` names `owner` among its owners (a child the owner generated)."""
    return str(owner["metadata"].get("uid")) in owner_uids(obj)


def orphans(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects whose owners are all gone, which are not being deleted already."""
    objects = list(objects)
    present = {obj["metadata"].get("uid") for obj in objects}
    return [obj for obj in objects
            if not is_deleting(obj) and (owners := owner_uids(obj)) and not owners & present]


def owner_reference(owner: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """What a generated child carries to name the object it was generated for."""
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": controller, "blockOwnerDeletion": True}
