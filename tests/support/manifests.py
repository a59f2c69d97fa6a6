"""Knative manifests the tests apply, built in one place."""

from __future__ import annotations

from typing import Any

EVENTING = "eventing.knative.dev/v1"
ORDER_ANNOTATION = "kafka.eventing.knative.dev/delivery.order"


def broker(name: str = "default", namespace: str = "ns1", **annotations: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": EVENTING, "kind": "Broker", "metadata": metadata}


def trigger(
    name: str,
    url: str,
    *,
    namespace: str = "ns1",
    broker: str = "default",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Trigger on `broker` delivering to `url`; other spec fields (filter, filters, delivery) as given."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": EVENTING,
        "kind": "Trigger",
        "metadata": metadata,
        "spec": {"broker": broker, "subscriber": {"uri": url}, **spec},
    }


def quick_dead_letter(sink: str) -> dict[str, Any]:
    """A Trigger's `delivery` that gives up fast: two retries 10 ms apart, then `sink`."""
    return {"retry": 2, "backoffDelay": "PT0.01S", "deadLetterSink": {"uri": sink}}


BROKER = broker()


MESSAGING = "messaging.knative.dev/v1"


def channel(name: str = "my-channel", namespace: str = "ns1", *, kind: str = "Channel",
            api_version: str = MESSAGING, **spec: Any) -> dict[str, Any]:
    """A channel as Knative's docs write one: the generic Channel (no channelTemplate: the default) or a
    concrete kind (`kind="KafkaChannel", api_version="messaging.knative.dev/v1beta1"`)."""
    manifest: dict[str, Any] = {"apiVersion": api_version, "kind": kind,
                                "metadata": {"name": name, "namespace": namespace}}
    if spec:
        manifest["spec"] = dict(spec)
    return manifest


def subscription(name: str, subscriber: str | dict[str, Any], *, channel: str = "my-channel",
                 namespace: str = "ns1", channel_kind: str = "Channel", channel_api_version: str = MESSAGING,
                 annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A Subscription of `channel` delivering to `subscriber` (a URL or a Destination); reply and delivery
    as given."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": MESSAGING,
        "kind": "Subscription",
        "metadata": metadata,
        "spec": {
            "channel": {"apiVersion": channel_api_version, "kind": channel_kind, "name": channel},
            "subscriber": {"uri": subscriber} if isinstance(subscriber, str) else subscriber,
            **spec,
        },
    }
