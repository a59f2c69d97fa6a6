"""The delivery layer: how any part of Nerve hands an event to an HTTP destination.

Shared by the dispatcher (Triggers, Subscriptions) and the sources (KafkaSource, PingSource, ...), so
retries and dead letters mean the same everywhere. Pure policy (`retry`, `deadletter`) is data and
functions; `sender` makes one HTTP attempt; `deliver` runs the attempts, reply routing and dead
letter for one event and keeps the invariant (every event ends delivered, dead-lettered or dropped
with a reason); `consumer` feeds it from a reader with an in-flight window and ordered lanes;
`metrics` are Knative's names and labels. Core knows no backend: a reply back into a Broker goes
through the `ReplyPublisher` the caller passes.
"""

from core.delivery.consumer import Consumer, Inbound
from core.delivery.deliver import Deliverer, Outcome, Target
from core.delivery.reply import ReplyPublisher
from core.delivery.retry import RetryPolicy
from core.delivery.sender import Attempt, Sender, pooled_session

__all__ = ["Attempt", "Consumer", "Deliverer", "Inbound", "Outcome", "ReplyPublisher", "RetryPolicy", "Sender",
           "Target", "pooled_session"]
