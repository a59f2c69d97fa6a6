"""CustomResourceDefinitions for every Knative kind Nerve serves, built from the kind registry.

The CRDs are derived, never written by hand: one per entry of `control.api.kinds.KINDS` whose API group
is a Knative one (`*.knative.dev`; the core Kubernetes kinds Nerve also stores, ConfigMap, Service,
Namespace, Deployment, ..., are the cluster's own). Each CRD's `openAPIV3Schema` is the kind's schema tree
(control/api/schema.py), the one the embedded admission walks, so the API server prunes exactly the fields
Nerve would report as unknown and the two cannot drift (`scripts/gen_crds.py --check` in the tests).

What a tree says maps onto a structural schema:

- an object with known fields -> `type: object` with those `properties` (everything else is pruned);
- `list_of` -> `type: array`; `map_of` -> `type: object` with `additionalProperties`;
- a LEAF (a scalar) and OPEN (anything) -> `x-kubernetes-preserve-unknown-fields: true` with no type: the
  trees do not record types because each kind's validator checks them, with Nerve's messages (the
  admission webhook's job on Kubernetes), and a CRD type would only duplicate that with other messages;
- an unimplemented field -> its schema with a description saying what Nerve does not do.

Every version Knative serves is served: the kind's `api_version` is the storage version. A kind with older
versions (`Kind.older_versions`, e.g. EventType v1beta2, PingSource v1beta1) has conversion strategy
`Webhook`: the operator's `/convert` (control/operator/webhooks.py) runs `Kind.convert`, the function
embedded admission runs, so a v1beta1 PingSource's `jsonData` is stored as v1's `data`. An older version's
`spec` is preserved as sent (its fields are not the storage version's: `jsonData` must reach the webhook),
and the converted object is pruned by the storage version's schema. The generated clientConfig names the
Service `nerve-webhook` in namespace `nerve` (the documented install) without a caBundle; the operator
patches both for its own release when it starts (`--webhook-service`, docs/kubernetes.md), since Helm does
not template `crds/`.

Printer columns are the kind's `COLUMNS` (the `nerve get` table) with their JSON paths; NAME and
NAMESPACE are kubectl's own. Categories are `all`, `knative`, the group's first label (`eventing`,
`messaging`, `flows`, `sources`), the kind's own `categories`, `channel` for a channel kind and `bindings`
for a binding. Duck labels, as Knative's CRDs carry them: `duck.knative.dev/addressable` for a kind whose
status has an address (a `status.address.url` column), `messaging.knative.dev/subscribable` for a channel (a kind whose
`spec.subscribers` the controller writes), `duck.knative.dev/source` (and `eventing.knative.dev/source`) for
a kind in category `sources`, `duck.knative.dev/binding` for a kind whose spec has a `subject` (SinkBinding).
"""

from __future__ import annotations

from typing import Any

from control.api import source
from control.api.columns import NAME, NAMESPACE, Column
from control.api.kinds import KINDS, Kind
from control.api.schema import Node

KNATIVE_GROUP_SUFFIX = "knative.dev"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
_ADDRESS_COLUMN = ".status.address.url"
_KUBECTL_COLUMNS = {NAME.json_path, NAMESPACE.json_path}

Obj = dict[str, Any]


def crd_kinds() -> tuple[Kind, ...]:
    """The kinds that get a CRD: every registered kind of a Knative API group."""
    return tuple(kind for kind in KINDS if kind.group.endswith(KNATIVE_GROUP_SUFFIX))


def is_channel(kind: Kind) -> bool:
    return "subscribers" in kind.server_spec


def is_binding(kind: Kind) -> bool:
    """The Binding duck (SinkBinding): a spec naming the `subject` it binds."""
    spec = (kind.schema.fields or {}).get("spec")
    return spec is not None and "subject" in (spec.fields or {})


def is_addressable(kind: Kind) -> bool:
    return any(column.json_path == _ADDRESS_COLUMN for column in kind.columns)


def categories(kind: Kind) -> list[str]:
    found = ["all", "knative", kind.group.split(".")[0], *kind.categories]
    if is_channel(kind):
        found.append("channel")
    if is_binding(kind):
        found.append("bindings")
    return list(dict.fromkeys(found))


def labels(kind: Kind) -> dict[str, str]:
    out = {"app.kubernetes.io/name": "nerve", "knative.dev/crd-install": "true"}
    if is_addressable(kind):
        out["duck.knative.dev/addressable"] = "true"
    if is_channel(kind):
        out["messaging.knative.dev/subscribable"] = "true"
    if source.CATEGORY in categories(kind):
        out["duck.knative.dev/source"] = "true"
        out["eventing.knative.dev/source"] = "true"
    if is_binding(kind):
        out["duck.knative.dev/binding"] = "true"
    return out


def openapi(node: Node, within: tuple[Node, ...] = ()) -> Obj:
    """The structural OpenAPI v3 schema of one node of a schema tree (see the module doc).

    A tree may be recursive (a Trigger's `filters` nest `all`/`any`/`not` of themselves) and a structural
    schema may not: where a node reappears inside itself, its schema stops at preserving what is there,
    which admission still checks to any depth."""
    inner = (*within, node)
    if node.open or (node.fields is None and node.items is None and node.values is None):
        out: Obj = {PRESERVE: True}
    elif node in within:
        out = {"type": "object" if node.items is None else "array", PRESERVE: True}
    elif node.fields is not None:
        out = {"type": "object",
               "properties": {name: openapi(child, inner) for name, child in node.fields.items()}}
    elif node.items is not None:
        out = {"type": "array", "items": openapi(node.items, inner)}
    else:
        assert node.values is not None
        out = {"type": "object", "additionalProperties": openapi(node.values, inner)}
    if node.unimplemented:
        out = {"description": f"Accepted but not implemented by Nerve: {node.unimplemented}.", **out}
    return out


def resource_schema(kind: Kind) -> Obj:
    """A whole resource's schema. The API server owns `metadata` (a CRD may not describe it) and `status`
    is written by the controller, so both are left open; the rest follows the tree."""
    schema = openapi(kind.schema)
    properties: Obj = schema.get("properties", {})
    for name in ("apiVersion", "kind"):
        if name in properties:
            properties[name] = {"type": "string"}
    if "metadata" in properties:
        properties["metadata"] = {"type": "object"}
    if "status" in properties:
        properties["status"] = {"type": "object", PRESERVE: True}
    return schema


def printer_column(column: Column) -> Obj:
    # The header as `nerve get` prints it: kubectl upper-cases a column's name, so the tables match.
    return {"name": column.header, "type": column.type, "jsonPath": column.json_path}


def printer_columns(kind: Kind) -> list[Obj]:
    """The kind's `nerve get` columns kubectl can print: those with a JSON path, less NAME and NAMESPACE."""
    return [printer_column(c) for c in kind.columns if c.json_path and c.json_path not in _KUBECTL_COLUMNS]


CONVERSION_SERVICE = {"namespace": "nerve", "name": "nerve-webhook", "path": "/convert", "port": 443}
"""Where the generated CRDs send conversions: the chart's webhook Service of the documented install; the
operator rewrites it (and adds the caBundle) for its own release."""


def older_version_schema(schema: Obj) -> Obj:
    """The storage schema with `spec` preserved as sent: an older version spells fields the storage one has not."""
    properties = dict(schema.get("properties", {}))
    if "spec" in properties:
        properties["spec"] = {"type": "object", PRESERVE: True}
    return {**schema, "properties": properties}


def conversion(kind: Kind) -> Obj:
    if not kind.older_versions:
        return {"strategy": "None"}
    return {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                                               "clientConfig": {"service": dict(CONVERSION_SERVICE)}}}


def crd(kind: Kind) -> Obj:
    schema = resource_schema(kind)
    columns = printer_columns(kind)
    versions = [
        {
            "name": api_version.rpartition("/")[2],
            "served": True,
            "storage": api_version == kind.api_version,
            "schema": {"openAPIV3Schema": schema if api_version == kind.api_version else older_version_schema(schema)},
            "subresources": {"status": {}},
            "additionalPrinterColumns": columns,
        }
        for api_version in kind.api_versions()
    ]
    names: Obj = {"kind": kind.kind, "plural": kind.plural, "singular": kind.kind.lower(),
                  "categories": categories(kind)}
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.resource, "labels": labels(kind)},
        "spec": {
            "group": kind.group,
            "names": names,
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": versions,
            "conversion": conversion(kind),
        },
    }


def all_crds() -> list[Obj]:
    return [crd(kind) for kind in crd_kinds()]
