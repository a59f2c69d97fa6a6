"""What every channel kind shares (Knative's Channelable duck): spec.subscribers, spec.delivery, the
subscribable annotation, the printer columns, and the rule that users never write spec.subscribers.

`spec.subscribers` is Nerve's: the Subscription reconciler writes it (one entry per Subscription, keyed by
its uid) straight to the store, around admission. A user's apply may leave it out (control/service.py keeps
the stored one, see Kind.server_spec) or send it back unchanged (`nerve get -o yaml | nerve apply -f -`),
but never set or change it.
"""

from __future__ import annotations

from typing import Any

from control.api import columns, schema
from control.api.delivery import default_delivery, validate_delivery
from control.api.meta import mapping
from control.api.schema import LEAF, OPEN, list_of
from core.errors import FieldError

SUBSCRIBABLE_ANNOTATION = "messaging.knative.dev/subscribable"
GROUP = "messaging.knative.dev"
OIDC_DISABLED = "authentication-oidc feature disabled"

# duckv1.SubscriberSpec (`ev:pkg/apis/duck/v1/subscribable_types.go`), as the reconciler writes it.
SUBSCRIBER_SPEC = schema.obj({
    "name": LEAF, "uid": LEAF, "generation": LEAF, "subscriberUri": LEAF, "subscriberCACerts": LEAF,
    "subscriberAudience": LEAF, "replyUri": LEAF, "replyCACerts": LEAF, "replyAudience": LEAF,
    "delivery": schema.DELIVERY, "auth": OPEN,
})
SPEC_FIELDS: dict[str, schema.Node] = {"subscribers": list_of(SUBSCRIBER_SPEC), "delivery": schema.DELIVERY}
# As Knative's channel CRDs print them (InMemoryChannel, Channel, KafkaChannel, NatsJetStreamChannel).
COLUMNS = (columns.NAME, columns.field("URL", "status", "address", "url"), columns.AGE, columns.READY,
           columns.REASON)

_SUBSCRIBERS_REASON = "is written by Nerve from the Subscriptions of this channel; create a Subscription instead"


def default_channelable(obj: dict[str, Any]) -> None:
    """The subscribable annotation and the dead-letter sink's namespace, as Knative's defaulting does."""
    meta = obj["metadata"]
    annotations = meta.setdefault("annotations", {})
    if isinstance(annotations, dict):
        annotations.setdefault(SUBSCRIBABLE_ANNOTATION, "v1")
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        default_delivery(spec.get("delivery"), meta["namespace"])


def validate_channelable(obj: dict[str, Any]) -> list[FieldError]:
    """What a user may write on any channel, created or updated: its delivery."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "must be an object")]
    return validate_delivery(spec.get("delivery"), "spec.delivery", obj["metadata"]["namespace"])


def validate_channelable_create(obj: dict[str, Any]) -> list[FieldError]:
    """A new channel comes with no subscribers: they are the Subscriptions'."""
    if mapping(obj.get("spec")).get("subscribers"):
        return [FieldError("spec.subscribers", _SUBSCRIBERS_REASON)]
    return []


def validate_channelable_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """An update may leave spec.subscribers out (Nerve writes it again) or repeat it, never change it."""
    new_spec = mapping(new.get("spec"))
    if "subscribers" not in new_spec or new_spec["subscribers"] == mapping(old.get("spec")).get("subscribers"):
        return []
    return [FieldError("spec.subscribers", _SUBSCRIBERS_REASON)]
