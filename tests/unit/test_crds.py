"""The CRDs are the kind registry's: one per Knative kind, every version Knative serves, the schema tree as
the structural schema, Knative's columns, categories and duck labels; and the committed files are current."""

from __future__ import annotations

import kubernetes_validate
import pytest

from control.api.kinds import KINDS, Kind
from control.api.schema import Node, check
from control.crds import crd, crd_kinds, openapi
from tests.support.launchers import script

CRD_KINDS = crd_kinds()


def _by_id(kind: Kind) -> str:
    return kind.kind


def test_committed_crds_are_current() -> None:
    generator = script("gen_crds")
    assert generator.stale(generator.render()) == [], "helm/nerve/crds is stale: run python scripts/gen_crds.py"


def test_every_knative_kind_has_a_crd_and_no_core_kind_does() -> None:
    knative = {k.kind for k in KINDS if k.group.endswith("knative.dev")}
    assert {k.kind for k in CRD_KINDS} == knative
    assert {"Broker", "Trigger", "KafkaSource", "InMemoryChannel", "Subscription", "Sequence"} <= knative
    assert not {"ConfigMap", "Service", "Namespace"} & {k.kind for k in CRD_KINDS}


@pytest.mark.parametrize("kind", CRD_KINDS, ids=_by_id)
def test_a_crd_is_valid_kubernetes_and_serves_every_version(kind: Kind) -> None:
    definition = crd(kind)
    kubernetes_validate.validate(definition, kubernetes_validate.latest_version(), strict=True)
    versions = {v["name"]: v for v in definition["spec"]["versions"]}
    assert set(versions) == {v.rpartition("/")[2] for v in kind.api_versions()}
    storage = [name for name, v in versions.items() if v["storage"]]
    assert storage == [kind.api_version.rpartition("/")[2]]
    assert all(v["served"] and v["subresources"] == {"status": {}} for v in versions.values())
    assert definition["metadata"]["name"] == f"{kind.plural}.{kind.group}"
    assert definition["spec"]["names"]["shortNames" if kind.short_names else "kind"] == \
        (list(kind.short_names) if kind.short_names else kind.kind)


@pytest.mark.parametrize("kind", CRD_KINDS, ids=_by_id)
def test_printer_columns_are_the_nerve_get_columns(kind: Kind) -> None:
    columns = crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
    expected = [c.header for c in kind.columns if c.json_path and c.header not in ("NAME", "NAMESPACE")]
    assert [c["name"] for c in columns] == expected
    if any(c.header == "AGE" for c in kind.columns):
        assert [c for c in columns if c["name"] == "AGE"] == [
            {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    if any(c.header == "READY" for c in kind.columns):
        assert {"name": "READY", "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="Ready")].status'} in columns


def test_categories_and_duck_labels_follow_knative() -> None:
    by_kind = {k.kind: crd(k) for k in CRD_KINDS}

    def categories(name: str) -> list[str]:
        return list(by_kind[name]["spec"]["names"]["categories"])

    def labels(name: str) -> dict[str, str]:
        return dict(by_kind[name]["metadata"]["labels"])

    assert categories("Broker") == ["all", "knative", "eventing"]
    assert categories("InMemoryChannel") == ["all", "knative", "messaging", "channel"]
    assert categories("Subscription") == ["all", "knative", "messaging"]
    assert categories("KafkaSource") == ["all", "knative", "sources"]
    assert labels("Broker")["duck.knative.dev/addressable"] == "true"
    assert labels("KafkaChannel")["messaging.knative.dev/subscribable"] == "true"
    assert labels("KafkaSource")["duck.knative.dev/source"] == "true"
    assert "duck.knative.dev/addressable" not in labels("Trigger")
    assert categories("SinkBinding") == ["all", "knative", "sources", "bindings"]
    assert labels("SinkBinding")["duck.knative.dev/binding"] == "true"
    assert "duck.knative.dev/binding" not in labels("PingSource")
    for kind in CRD_KINDS:
        if "sources" in kind.categories:
            assert labels(kind.kind)["duck.knative.dev/source"] == "true", kind.kind


def _known_paths(schema: dict[str, object], path: str = "") -> set[str]:
    """Every property path the OpenAPI schema names (what the API server keeps when it prunes)."""
    found = {path} if path else set()
    for name, child in dict(schema.get("properties", {})).items():  # type: ignore[call-overload]
        found |= _known_paths(child, f"{path}.{name}" if path else name)
    items = schema.get("items")
    if isinstance(items, dict):
        found |= _known_paths(items, f"{path}[0]")
    return found


@pytest.mark.parametrize("kind", CRD_KINDS, ids=_by_id)
def test_the_schema_keeps_exactly_what_admission_knows(kind: Kind) -> None:
    """A field admission calls unknown is one the CRD prunes, and the reverse: the two read one tree."""
    spec = openapi(kind.schema)["properties"].get("spec")
    tree: Node | None = (kind.schema.fields or {}).get("spec")
    if spec is None or tree is None:
        return
    for path in sorted(_known_paths(spec)):
        manifest: dict[str, object] = {}
        cursor: dict[str, object] = manifest
        parts = path.replace("[0]", "").split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})  # type: ignore[assignment]
        cursor[parts[-1]] = "x"
        unknown = [n for n in check(manifest, tree) if n.unknown]
        if "[0]" not in path:
            assert unknown == [], f"{kind.kind} spec.{path}: the CRD keeps it but admission calls it unknown"
    assert [n.path for n in check({"brokr-typo": 1}, tree) if n.unknown] == ["brokr-typo"]
    assert "brokr-typo" not in spec["properties"]
