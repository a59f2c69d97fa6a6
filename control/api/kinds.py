"""Every kind Nerve stores, with the spellings `nerve get` accepts (as kubectl does)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def spellings(self) -> set[str]:
        names = {self.kind.lower(), self.plural, *self.short_names}
        if self.group:
            names |= {f"{self.plural}.{self.group}", f"{self.kind.lower()}.{self.group}"}
        return names


BROKER = Kind("eventing.knative.dev/v1", "Broker", "brokers")
TRIGGER = Kind("eventing.knative.dev/v1", "Trigger", "triggers")
CONFIGMAP = Kind("v1", "ConfigMap", "configmaps", ("cm",))
SERVICE = Kind("v1", "Service", "services", ("svc",))
NAMESPACE = Kind("v1", "Namespace", "namespaces", ("ns",), namespaced=False)
KAFKA_SOURCE = Kind("sources.knative.dev/v1", "KafkaSource", "kafkasources")

KINDS: tuple[Kind, ...] = (BROKER, TRIGGER, CONFIGMAP, SERVICE, NAMESPACE, KAFKA_SOURCE)
_BY_SPELLING = {spelling: kind for kind in KINDS for spelling in kind.spellings()}
_BY_MANIFEST = {(kind.api_version, kind.kind): kind for kind in KINDS}
# Older API versions Knative still serves, stored under the kind's current one.
_BY_MANIFEST[("sources.knative.dev/v1beta1", "KafkaSource")] = KAFKA_SOURCE


def lookup(name: str) -> Kind | None:
    """A kind by any accepted spelling: `broker`, `brokers`, `Broker`, `brokers.eventing.knative.dev`."""
    return _BY_SPELLING.get(name.lower())


def for_manifest(api_version: str, kind: str) -> Kind | None:
    return _BY_MANIFEST.get((api_version, kind))


def supported() -> str:
    return ", ".join(f"{k.api_version}/{k.kind}" for k in KINDS)
