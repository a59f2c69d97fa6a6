"""The NATS JetStream backend (nats-py): one stream per Broker or Channel, one durable pull consumer per
Trigger or Subscription.

Naming: a topic maps to the stream `stream_name(topic)` holding the single subject
`nerve.<stream_name>`; a consumer group maps to the durable consumer `consumer_name(group)`. Letters,
digits and `-` stay as they are and anything else becomes `_XX` (hex of its UTF-8 bytes), so the
mapping is injective (`a.b` and `a_b` never share a stream) and every name is a valid NATS token; a
name longer than 200 characters is cut and suffixed with a hash of the whole.

Stream settings: `TopicSpec.config` keys (`STREAM_CONFIG_KEYS`, table in docs/nats.md), validated
here so that a bad value is a BackendError naming the key, applied on create and, for what JetStream lets
change, on every later `ensure_topic`. A workqueue stream lets one consumer read its subject: Nerve's
stream has one subject, so it takes one group, and a second fails to start saying so.

Storage: binary mode, as on HTTP. Attributes are `ce-<name>` headers, percent-encoded as the HTTP
binding does; the content type is `content-type`, where only `%`, control and non-ASCII characters (and
edge spaces, which NATS trims) are percent-encoded. Data is the payload. The one case binary mode
cannot tell apart (no data vs empty data) is marked with `nerve-data: none|empty` only where the usual
reading (an empty payload without content type means no data) would be wrong. Pass-through transport
headers ride along as `nerve-h-<name>`. Everything round-trips to the same string form; extension values
come back as strings, as from HTTP.

Publishing is pipelined on one connection: each publish sends its message with a reply subject of its
own under one wildcard inbox and awaits only its own JetStream ack, so concurrent callers share the
socket and the server's work instead of queueing one round trip each. A semaphore bounds the window of
outstanding acks (`publish_window`); waiting for room counts against `publish_timeout_s`. nats-py's
`publish_async` does the same but leaks a window slot whenever the send itself fails (a reconnecting
connection), which an outage would turn into a permanently full window; this is the same idea with the
clean-up in a `finally`. While the connection is down a publish fails at once, and a lost connection
fails the publishes awaiting their ack: BackendError, so the ingress answers 503 and the producer
retries (the message may have been stored all the same: at least once, never a 202 for a lost event).

Consuming: a durable pull consumer with explicit acks (a new group starts at NEW, or ALL with
`from_start`; an existing group keeps its position). `receive()` sends one pull request at a time with
`no_wait` and an expiry: the server delivers what is pending, up to the batch, and ends the request
with a 404 status as soon as nothing more is pending, or waits until the expiry when nothing is
pending at all. So a receive returns on the first message without lingering for a full batch (nats-py's
`fetch` waits out its whole timeout for the rest of a batch once one message came, which costs up to
the timeout in latency under a trickle). Each request has its own reply subject so a late status of an
old request never ends a newer one. A request lost to a reconnect is re-sent at once (the connection's
reconnect callback) or at the latest after its expiry.

Ack wait vs retries: retries and back-off stay in the dispatcher, the same code for every backend (same
retryable codes, same back-off, same dead-letter extensions), so a message is acked once, after a 2xx or
after dead-lettering, and JetStream's redelivery is only the crash path. The dispatcher may hold a
message through minutes of back-off, longer than any sensible ack wait, so every message this process
holds is marked in progress (`+WPI`, which restarts the server's ack-wait clock) every `ack_wait_s / 3`.
A dead dispatcher stops doing that and its messages come back after `ack_wait_s` (30 s by default), not
after the longest possible back-off. `NakWithDelay` redelivery (eventing-natss' choice) was not taken:
it would make the retry schedule a property of this backend alone. A stopped subscription first drops
its inbox (the server then forgets its open pull request) and NAKs what it still holds, so the group's
next reader gets those messages at once.

A nats-server restart: nats-py reconnects (forever, `reconnect_wait_s` apart) and re-subscribes its
inboxes; receive() keeps re-sending pull requests until the server answers, and the durable, file-backed
consumer continues where it was. Acks sent while disconnected may be lost; those messages come back
after the ack wait (a duplicate, never a loss).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.client import RawCredentials
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError

from channels.base import Backend, Message, Reader, TopicSpec
from core.backend_security import NatsSecurity, SecurityError, ssl_context
from core.errors import BackendError, InvalidEvent
from core.events import Event, attr_to_string, from_binary, to_binary

log = logging.getLogger("nerve.channels.nats")

SUBJECT_PREFIX = "nerve."
PASS_THROUGH_PREFIX = "nerve-h-"
DATA_MARKER = "nerve-data"
_API_PREFIX = "$JS.API"
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")
_MAX_NAME = 200
# A header value keeps printable ASCII as it is; `%` is always escaped so decoding is a plain unquote.
_VALUE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
_VALUE_SAFE_NO_SPACE = _VALUE_SAFE.replace(" ", "")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_E = TypeVar("_E", bound=Enum)


@dataclass(frozen=True, slots=True)
class NatsSettings:
    url: str
    """One server URL or several, comma-separated (nats://host:port)."""
    storage: str = "file"
    """Stream storage: file (durable, the default) or memory (lost with the server)."""
    max_age_s: float = 0.0
    """Drop events older than this; 0 keeps them until `max_bytes`."""
    max_bytes: int = -1
    """Size limit of a stream; the oldest events go first. -1: unlimited."""
    replicas: int = 1
    """Stream replicas on a clustered JetStream."""
    publish_window: int = 4096
    """Publishes awaiting their JetStream ack at once; more wait for room."""
    publish_timeout_s: float = 5.0
    """Longest a publish waits (for room and for its ack) before it is a BackendError (503)."""
    fetch_batch: int = 256
    """Most messages one pull request asks for (also bounded by what the caller can take)."""
    pull_expires_s: float = 5.0
    """How long a pull request waits on the server when nothing is pending."""
    ack_wait_s: float = 30.0
    """Redelivery delay of a message whose holder died; held messages are kept alive meanwhile."""
    max_ack_pending: int = 20_000
    """Most unacked messages one consumer group may have out at once."""
    api_timeout_s: float = 5.0
    """Timeout of JetStream API requests (stream and consumer management)."""
    connect_timeout_s: float = 2.0
    connect_attempts: int = 2
    """Attempts of the first connection before start() fails (later reconnects never give up)."""
    reconnect_wait_s: float = 0.5
    max_reconnect_attempts: int = -1
    """After the first connection: -1 keeps reconnecting for ever, as a server restart needs."""
    security: NatsSecurity | None = None
    """TLS and credentials (user/password, token or a .creds file); None connects in the clear, as the
    URL says (a `nats://user:pass@host` URL still works as nats-py reads it)."""


def client_security(security: NatsSecurity | None) -> dict[str, Any]:
    """nats-py's connect() keyword arguments for `security`; BackendError when they cannot be used."""
    if security is None:
        return {}
    options: dict[str, Any] = {}
    if security.tls:
        try:
            options["tls"] = ssl_context(security.ca_pem, security.cert_pem, security.key_pem)
        except SecurityError as exc:
            raise BackendError(f"NATS TLS: {exc}") from None
    if security.user:
        options.update(user=security.user, password=security.password)
    if security.token:
        options["token"] = security.token
    if security.credentials:
        options["user_credentials"] = RawCredentials(security.credentials)
    return options


_INT32_MAX = 2**31 - 1
# JetStream API error codes (nats-server's server/errors.json).
_WORKQUEUE_NOT_UNIQUE = 10100  # "filtered consumer not unique on workqueue stream"
_MAX_CONSUMERS_REACHED = 10026  # "maximum consumers limit reached"
_MIN_DUPLICATE_WINDOW_S = 0.001
# Accepted spellings of the enum-valued stream settings: JetStream's own and Knative eventing-natss'
# (`Limits`, `Interest`, `Work`; `File`, `Memory`; `Old`, `New`), matched case-insensitively.
_STORAGE = {"file": StorageType.FILE, "memory": StorageType.MEMORY}
_RETENTION = {"limits": RetentionPolicy.LIMITS, "interest": RetentionPolicy.INTEREST,
              "workqueue": RetentionPolicy.WORK_QUEUE, "work": RetentionPolicy.WORK_QUEUE}
_DISCARD = {"old": DiscardPolicy.OLD, "new": DiscardPolicy.NEW}
# StreamConfig fields ensure_topic() brings in line with the topic's config on an existing stream.
_UPDATABLE = ("retention", "max_age", "max_bytes", "max_msgs", "max_msg_size", "max_consumers", "discard",
              "duplicate_window", "num_replicas")
STREAM_CONFIG_KEYS = frozenset({"storage", "retention", "max.age.seconds", "max.bytes", "max.msgs", "max.msg.size",
                                "max.consumers", "discard", "duplicate.window.seconds", "replicas"})
"""The TopicSpec.config keys this backend reads (a Broker's ConfigMap, a NatsJetStreamChannel's stream
config); any other key is ignored."""


def _bad(topic: str, key: str, value: object, wanted: str) -> BackendError:
    return BackendError(f"NATS stream of {topic!r}: {key!r} must be {wanted}, not {str(value)!r}")


def _choice(topic: str, config: Mapping[str, str], key: str, choices: Mapping[str, _E], default: str) -> _E:
    value = str(config.get(key, default))
    try:
        return choices[value.strip().lower()]
    except KeyError:
        raise _bad(topic, key, value, "one of " + ", ".join(choices) + " (any case)") from None


def _number(topic: str, config: Mapping[str, str], key: str, default: float, *, minimum: float) -> float:
    value = config.get(key, default)
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number) or number < minimum:
        raise _bad(topic, key, value, f"a number of seconds, at least {minimum:g}")
    return number


def _limit(topic: str, config: Mapping[str, str], key: str, default: int, *, minimum: int = -1,
           maximum: int = 2**63 - 1) -> int:
    """A whole number from `minimum` to `maximum`; for the limits -1 means none (0, which JetStream would
    quietly read as "none" too, is refused as the likely mistake it is)."""
    value = config.get(key, default)
    try:
        number: int | None = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or not minimum <= number <= maximum or number == 0:
        wanted = "a whole number of at least 1" if minimum == 1 else "a whole number above 0, or -1 for no limit"
        if maximum < 2**63 - 1:
            wanted += f", at most {maximum}"
        raise _bad(topic, key, value, wanted)
    return number


def _plain(value: object) -> object:
    """An enum member and its value compare equal (nats-py reads configs back as plain strings)."""
    return getattr(value, "value", value)


def _api_error(exc: BaseException) -> str:
    # nats-py's APIError has an empty repr; its description and code are what the server said.
    description = getattr(exc, "description", None)
    return f"{description} (JetStream error {getattr(exc, 'err_code', '?')})" if description else repr(exc)


def _name(text: str) -> str:
    escaped = _NAME_UNSAFE.sub(lambda m: "".join(f"_{b:02X}" for b in m.group().encode()), text)
    if len(escaped) > _MAX_NAME:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        escaped = f"{escaped[: _MAX_NAME - 17]}_{digest}"
    return escaped or "_"


def stream_name(topic: str) -> str:
    return _name(topic)


def subject(topic: str) -> str:
    """The stream's own subject: what Nerve before typed subjects published to (still read, see below)."""
    return SUBJECT_PREFIX + stream_name(topic)


def type_token(event_type: str) -> str:
    """An event type as one NATS subject token: RFC 4648 base32 of its UTF-8 bytes, without padding.

    A token may not hold `.`, `*`, `>` or white space, which types do (`dev.knative.sources.ping`); base32's
    alphabet (A-Z, 2-7) has none of them, and it is reversible (`type_of_token`), so two types never share a
    token. 1.6 bytes of subject per byte of type."""
    return base64.b32encode(event_type.encode()).decode().rstrip("=")


def type_of_token(token: str) -> str:
    return base64.b32decode(token + "=" * (-len(token) % 8)).decode()


def typed_subject(topic: str, event_type: str) -> str:
    """Where an event of `event_type` is published: `nerve.<stream>.<type_token(type)>`."""
    return f"{subject(topic)}.{type_token(event_type)}"


def stream_subjects(topic: str) -> list[str]:
    """A stream takes the typed subjects and its own bare subject, which older publishers used."""
    return [subject(topic), f"{subject(topic)}.>"]


def consumer_subjects(topic: str, event_type: str | None) -> list[str]:
    """What a consumer group reads: with an exact `type` the server delivers only that type's subject
    (and the bare one, where events published before typed subjects are); without, everything."""
    return [subject(topic), typed_subject(topic, event_type) if event_type is not None else f"{subject(topic)}.>"]


def consumer_name(group: str) -> str:
    return _name(group)


def _escape(value: str) -> str:
    text = quote(value, safe=_VALUE_SAFE)
    if text[:1] == " " or text[-1:] == " ":
        text = quote(value, safe=_VALUE_SAFE_NO_SPACE)
    return text


def encode(event: Event) -> tuple[dict[str, str], bytes]:
    headers, body = to_binary(event)
    headers.pop("Content-Type", None)
    content_type = event.attributes.get("datacontenttype")
    if content_type is not None:
        headers["content-type"] = _escape(attr_to_string(content_type))
        if event.data is None:
            headers[DATA_MARKER] = "none"
    elif event.data is not None and not event.data:
        headers[DATA_MARKER] = "empty"
    for name, value in event.headers.items():
        if _HEADER_NAME.fullmatch(name):
            headers[PASS_THROUGH_PREFIX + name.lower()] = _escape(value)
    return headers, body


def decode(headers: dict[str, str] | None, payload: bytes) -> Event:
    pairs: list[tuple[str, str]] = []
    passed: dict[str, str] = {}
    marker = ""
    for name, value in (headers or {}).items():
        lower = name.lower()
        if lower.startswith(PASS_THROUGH_PREFIX):
            passed[lower[len(PASS_THROUGH_PREFIX) :]] = unquote(value)
        elif lower == "content-type":
            pairs.append((lower, unquote(value)))
        elif lower == DATA_MARKER:
            marker = value
        else:
            pairs.append((name, value))
    event = from_binary(pairs, payload)
    if marker == "none":
        event.data = None
    elif marker == "empty":
        event.data = b""
    event.headers = passed
    return event


class _NoStream(BackendError):
    """No stream takes the subject a publish went to (JetStream's 503 "no responders")."""


class _NatsMessage(Message):
    __slots__ = ("_done", "_event", "_msg", "_subscription")

    def __init__(self, subscription: _NatsReader, msg: Msg, event: Event) -> None:
        self._subscription = subscription
        self._msg = msg
        self._event = event
        self._done = False

    @property
    def event(self) -> Event:
        return self._event

    @property
    def ordering_key(self) -> str:
        return str(self._event.attributes.get("partitionkey", ""))

    async def ack(self) -> None:
        if self._done:
            return
        self._done = True
        self._subscription.held.pop(self._msg.reply, None)
        try:
            await self._msg.ack()
        except NatsError as exc:
            # Not acked: JetStream redelivers after ack_wait (at least once, never lost).
            log.warning("ack of %s failed, it will be redelivered: %r", self._event.id, exc)


async def _settle(msg: Msg, how: str) -> None:
    """NAK (give back now), in-progress (keep) or TERM (never again) one message; best effort, since an
    unsettled message comes back after the ack wait anyway."""
    with contextlib.suppress(NatsError):
        if how == "nak":
            await msg.nak()
        elif how == "wpi":
            await msg.in_progress()
        else:
            await msg.term()


class _NatsReader(Reader):
    def __init__(self, channel: NatsBackend, topic: str, group: str, from_start: bool,
                 since: float | None = None, event_type: str | None = None) -> None:
        self._channel = channel
        self._event_type = event_type
        self._since = since
        self._topic = topic
        self._stream = stream_name(topic)
        self._durable = consumer_name(group)
        self._from_start = from_start
        self._inbox = ""
        self._sub: NatsSubscription | None = None
        # Delivered by the server, not yet handed out by receive().
        self._ready: deque[Msg] = deque()
        # Handed out, not yet acked, by ack subject (unique per delivery): kept alive, NAKed on stop.
        self.held: dict[str, Msg] = {}
        self._last: Msg | None = None
        """The newest message delivered here: its ack subject says how many more the stream has for the consumer."""
        self._wake = asyncio.Event()
        self._tokens = itertools.count(1)
        self._request: str | None = None
        self._request_left = 0
        self._request_deadline = 0.0
        self._pause = 0.0
        self._keepalive: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        js = self._channel.js()
        try:
            try:
                # An existing group keeps its position (and its deliver policy, which cannot change).
                info = await js.consumer_info(self._stream, self._durable)
            except NotFoundError:
                # Once the consumer exists its start is fixed: every later publish reaches the group.
                await self._add_consumer(js)
            else:
                await self._refilter(js, info.config)
            nc = self._channel.connection()
            self._inbox = nc.new_inbox()
            self._sub = await nc.subscribe(f"{self._inbox}.*", cb=self._on_message)
        except (NatsError, TimeoutError) as exc:
            raise BackendError(
                f"NATS consumer {self._durable!r} on stream {self._stream!r} did not start: {_api_error(exc)}"
            ) from None
        self._channel.subscriptions.add(self)
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"nats-keepalive-{self._durable}")

    async def _subjects(self, js: JetStreamContext) -> tuple[list[str], str]:
        """The consumer's filter subjects, and the stream's retention. A workqueue stream keeps what its one
        consumer does not take, so there the consumer takes everything and the dispatcher filters."""
        retention = str(_plain((await js.stream_info(self._stream)).config.retention))
        typed = None if retention == RetentionPolicy.WORK_QUEUE.value else self._event_type
        return consumer_subjects(self._topic, typed), retention

    async def _refilter(self, js: JetStreamContext, config: ConsumerConfig) -> None:
        """An existing group reads what it should now: one made before typed subjects (filter `nerve.<s>`),
        or whose Trigger's exact type changed, has its filter subjects updated in place; its position and
        everything else it was made with stay."""
        have = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
        wanted, _ = await self._subjects(js)
        if sorted(have) != sorted(wanted):
            await js.add_consumer(self._stream, dataclasses.replace(config, filter_subject=None,
                                                                    filter_subjects=wanted))

    async def _add_consumer(self, js: JetStreamContext) -> None:
        s = self._channel.settings
        subjects, retention = await self._subjects(js)
        # A workqueue stream holds only what no consumer took yet and JetStream insists that its consumer
        # start with the oldest of that; NEW is for streams that keep what others already read.
        from_start = self._from_start or retention == RetentionPolicy.WORK_QUEUE.value
        # A new group with a `since` (its Trigger's or Subscription's creation) starts with what was stored
        # from then on: events the ingress took while no dispatcher read are not skipped.
        since = None if from_start or self._since is None else datetime.fromtimestamp(self._since, UTC)
        policy = DeliverPolicy.ALL if from_start else DeliverPolicy.BY_START_TIME if since else DeliverPolicy.NEW
        config = ConsumerConfig(
            durable_name=self._durable,
            deliver_policy=policy,
            opt_start_time=since,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait_s,
            max_ack_pending=s.max_ack_pending,
            max_deliver=-1,
            filter_subjects=subjects,
        )
        try:
            await js.add_consumer(self._stream, config)
        except APIError as exc:
            code = exc.err_code
            if code == _WORKQUEUE_NOT_UNIQUE:
                raise BackendError(
                    f"NATS stream {self._stream!r} has retention workqueue, which lets one consumer group "
                    f"read it, and another already does: {self._durable!r} cannot start. A Broker or Channel "
                    "with `retention: workqueue` takes one Trigger or Subscription; use limits or interest "
                    "for more") from None
            if code == _MAX_CONSUMERS_REACHED:
                raise BackendError(
                    f"NATS stream {self._stream!r} already has the most consumer groups its `max.consumers` "
                    f"allows: {self._durable!r} cannot start") from None
            raise

    async def _on_message(self, msg: Msg) -> None:
        if msg.reply:
            # A stream message (its reply subject is where acks go), whichever request brought it.
            self._ready.append(msg)
            self._last = msg
            self._wake.set()
            # A request that got its whole batch ends without a status. Messages keep their stream
            # subject, so which request brought one is unknown: counting a late one of an abandoned
            # request against the open one at worst sends the next request early.
            if self._request is not None:
                self._request_left -= 1
                if self._request_left <= 0:
                    self._request = None
            return
        status = (msg.headers or {}).get("Status", "")
        if status == "100":
            return  # idle heartbeat
        if msg.subject.rpartition(".")[2] != self._request:
            return  # the end of a request this subscription already gave up on
        self._request = None
        if status not in ("404", "408"):
            # 409 (consumer deleted, too many waiting pulls), 503 (no JetStream): try again a bit later.
            description = (msg.headers or {}).get("Description", "")
            log.warning("pull on %s/%s answered %s %s", self._stream, self._durable, status, description)
            self._pause = 0.5
        self._wake.set()

    def connection_reset(self) -> None:
        """The connection came back: the server forgot the open pull request, send a new one."""
        self._request = None
        self._wake.set()

    async def _pull(self, batch: int) -> None:
        s = self._channel.settings
        token = str(next(self._tokens))
        request = {"batch": batch, "expires": int(s.pull_expires_s * 1e9), "no_wait": True}
        self._request = token
        self._request_left = batch
        self._request_deadline = asyncio.get_running_loop().time() + s.pull_expires_s + 1.0
        try:
            await self._channel.connection().publish(
                f"{_API_PREFIX}.CONSUMER.MSG.NEXT.{self._stream}.{self._durable}",
                orjson.dumps(request),
                reply=f"{self._inbox}.{token}",
            )
        except (NatsError, OSError):
            self._request = None
            raise

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def receive(self, max_records: int) -> Sequence[Message]:
        if self._sub is None:
            raise BackendError("subscription used before start()")
        loop = asyncio.get_running_loop()
        while not self._stopped:
            if self._ready:
                deliveries = await self._hand_out(max_records)
                if deliveries:
                    return deliveries
                continue
            if self._request is None or loop.time() >= self._request_deadline:
                if self._pause:
                    pause, self._pause = self._pause, 0.0
                    await asyncio.sleep(pause)
                    continue
                try:
                    await self._pull(max(1, min(max_records, self._channel.settings.fetch_batch)))
                except (NatsError, OSError) as exc:
                    # Reconnecting: the reconnect callback or the pause ends the wait.
                    log.debug("pull on %s/%s not sent: %r", self._stream, self._durable, exc)
                    self._wake.clear()
                    await self._wait(self._channel.settings.reconnect_wait_s)
                    continue
            self._wake.clear()
            if self._ready or self._request is None or self._stopped:
                continue
            await self._wait(max(0.0, self._request_deadline - loop.time()))
        return []

    def lag(self) -> int | None:
        """Unacked messages held or ready here, plus what the stream still has for the consumer beyond the
        newest one delivered here (that message's num_pending)."""
        if self._last is None:
            return None
        try:
            pending = self._last.metadata.num_pending
        except (ValueError, IndexError, AttributeError):
            return None
        return len(self.held) + len(self._ready) + pending

    async def _hand_out(self, max_records: int) -> list[Message]:
        deliveries: list[Message] = []
        while self._ready and len(deliveries) < max_records:
            msg = self._ready.popleft()
            try:
                event = decode(msg.headers, msg.data)
            except InvalidEvent as exc:
                log.warning("%s/%s: not a CloudEvent, dropped: %s", self._stream, self._durable, exc)
                await _settle(msg, "term")
                continue
            delivery = _NatsMessage(self, msg, event)
            self.held[msg.reply] = msg
            deliveries.append(delivery)
        return deliveries

    async def _keep_alive(self) -> None:
        interval = self._channel.settings.ack_wait_s / 3
        while True:
            await asyncio.sleep(interval)
            # Sequential and yielding: thousands of held messages must not stall the event loop.
            for msg in [*self.held.values(), *self._ready]:
                await _settle(msg, "wpi")

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._channel.subscriptions.discard(self)
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        if self._sub is not None:
            # First the inbox, so the server drops the open pull request and a NAKed message cannot come
            # straight back here.
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()
        unacked = [*self.held.values(), *self._ready]
        self.held.clear()
        self._ready.clear()
        for msg in unacked:
            await _settle(msg, "nak")
        if unacked:
            with contextlib.suppress(NatsError, TimeoutError):
                await self._channel.connection().flush(timeout=2)


class NatsBackend(Backend):
    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings
        self.subscriptions: set[_NatsReader] = set()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._window = asyncio.Semaphore(settings.publish_window)
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._ack_inbox = ""
        self._tokens = itertools.count(1)
        self._last_error: Exception | None = None

    @property
    def name(self) -> str:
        return "nats"

    @property
    def durable(self) -> bool:
        return self.settings.storage != "memory"

    async def start(self) -> None:
        s = self.settings
        nc = NatsClient()
        # nats-py can wait for ever on a TLS handshake that failed verification: bounded by the attempts.
        bound = (s.connect_timeout_s + s.reconnect_wait_s) * max(1, s.connect_attempts) + 1.0
        try:
            await asyncio.wait_for(nc.connect(
                [url.strip() for url in s.url.split(",") if url.strip()],
                connect_timeout=s.connect_timeout_s,  # type: ignore[arg-type]  # nats-py annotates int
                reconnect_time_wait=s.reconnect_wait_s,  # type: ignore[arg-type]
                max_reconnect_attempts=s.connect_attempts - 1,
                allow_reconnect=True,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                name="nerve",
                **client_security(s.security),
            ), bound)
        except (NatsError, OSError, TimeoutError) as exc:
            with contextlib.suppress(NatsError, TimeoutError):
                await asyncio.wait_for(nc.close(), 2.0)
            cause = f" ({self._last_error!r})" if self._last_error is not None and self._last_error is not exc else ""
            raise BackendError(f"NATS at {s.url} is unreachable: {exc!r}{cause}") from None
        # A limited number of attempts only for the first connection (nats-py would otherwise retry an
        # unreachable server for ever inside connect()); from now on a restart is waited out.
        nc.options["max_reconnect_attempts"] = s.max_reconnect_attempts
        self._nc = nc
        self._js = nc.jetstream(timeout=s.api_timeout_s)
        self._ack_inbox = nc.new_inbox() + "."
        await nc.subscribe(self._ack_inbox + "*", cb=self._on_ack)

    async def stop(self) -> None:
        for sub in list(self.subscriptions):
            await sub.stop()
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(NatsError):
                await nc.close()
        self._fail_pending("the NATS channel stopped")

    async def _on_error(self, exc: Exception) -> None:
        # Kept for start(): nats-py's connect() ends with NoServersError, and the cause a user needs
        # (an authorization violation, a certificate that does not verify) came only through here.
        if not (isinstance(self._last_error, NatsError) and isinstance(exc, OSError)):
            self._last_error = exc  # the server's -ERR (Authorization Violation) beats the broken pipe after it
        log.debug("nats connection %s: %r", self.settings.url, exc)

    async def _on_disconnected(self) -> None:
        log.info("disconnected from NATS at %s; reconnecting", self.settings.url)
        # Their acks will never come on this connection: fail them now rather than after the timeout.
        self._fail_pending("the connection to NATS was lost before the JetStream ack")

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS at %s", self.settings.url)
        for sub in self.subscriptions:
            sub.connection_reset()

    def _fail_pending(self, reason: str) -> None:
        for future in self._acks.values():
            if not future.done():
                future.set_exception(BackendError(reason))

    def connection(self) -> NatsClient:
        if self._nc is None:
            raise BackendError("NATS channel used before start()")
        return self._nc

    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BackendError("NATS channel used before start()")
        if not self.connection().is_connected:
            raise BackendError(f"NATS at {self.settings.url} is not connected (reconnecting)")
        return self._js

    # ------------------------------------------------------------------------------------ topics

    def _stream_config(self, spec: TopicSpec) -> StreamConfig:
        s, config = self.settings, spec.config
        name = spec.name
        duplicates = config.get("duplicate.window.seconds")
        return StreamConfig(
            name=stream_name(name),
            subjects=stream_subjects(name),
            storage=_choice(name, config, "storage", _STORAGE, s.storage),
            retention=_choice(name, config, "retention", _RETENTION, "limits"),
            max_age=_number(name, config, "max.age.seconds", s.max_age_s, minimum=0.0) or None,
            max_bytes=_limit(name, config, "max.bytes", s.max_bytes),
            max_msgs=_limit(name, config, "max.msgs", -1),
            max_msg_size=_limit(name, config, "max.msg.size", -1, maximum=_INT32_MAX),
            max_consumers=_limit(name, config, "max.consumers", -1),
            discard=_choice(name, config, "discard", _DISCARD, "old"),
            # 0 lets JetStream pick its default (2 minutes, or the max age when that is shorter).
            duplicate_window=0.0 if duplicates is None else _number(
                name, config, "duplicate.window.seconds", 0.0, minimum=_MIN_DUPLICATE_WINDOW_S),
            num_replicas=int(_limit(name, config, "replicas", spec.replication_factor or s.replicas, minimum=1)),
        )

    async def ensure_topic(self, spec: TopicSpec) -> None:
        wanted = self._stream_config(spec)
        name = wanted.name or ""
        js = self.js()
        try:
            try:
                current = (await js.stream_info(name)).config
            except NotFoundError:
                await js.add_stream(wanted)
                return
            await self._update_stream(spec, current, wanted)
        except (NatsError, TimeoutError) as exc:
            raise BackendError(f"cannot create NATS stream {name!r}: {_api_error(exc)}") from None

    async def _update_stream(self, spec: TopicSpec, current: StreamConfig, wanted: StreamConfig) -> None:
        """Apply what JetStream lets change in place; the storage kind and a change of retention to or from
        workqueue it refuses, so those stay as they are (with a warning) until the stream is made again."""
        name = wanted.name or ""
        changes: dict[str, object] = {}
        for key in _UPDATABLE:
            have, want = getattr(current, key), getattr(wanted, key)
            if key == "duplicate_window" and not want:
                continue  # not configured: keep what JetStream chose
            if key == "max_age":
                have = have or None
            if _plain(have) != _plain(want):
                changes[key] = want
        retention = changes.get("retention")
        if retention is not None and RetentionPolicy.WORK_QUEUE in (_plain(current.retention), _plain(retention)):
            log.warning("stream %s keeps its %s retention: JetStream cannot change retention to or from "
                        "workqueue; recreate the stream to change it", name, _plain(current.retention))
            del changes["retention"]
        if sorted(current.subjects or []) != sorted(wanted.subjects or []):
            # A stream made before typed subjects took only `nerve.<stream>`; it takes both from now on.
            changes["subjects"] = wanted.subjects
        if _plain(current.storage) != _plain(wanted.storage):
            log.warning("stream %s keeps its %s storage; recreate it to change that", name, current.storage)
        if changes:
            await self.js().update_stream(dataclasses.replace(current, **changes))  # type: ignore[arg-type]

    async def delete_topic(self, name: str) -> None:
        try:
            await self.js().delete_stream(stream_name(name))
        except NotFoundError:
            return
        except (NatsError, TimeoutError) as exc:
            raise BackendError(f"cannot delete NATS stream {stream_name(name)!r}: {exc!r}") from None

    # ------------------------------------------------------------------------------------ publishing

    async def _on_ack(self, msg: Msg) -> None:
        future = self._acks.get(msg.subject[len(self._ack_inbox) :])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(_NoStream("no JetStream stream takes this subject (topic not created?)"))
            return
        try:
            answer = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            future.set_exception(BackendError(f"unreadable JetStream ack: {msg.data[:200]!r}"))
            return
        error = answer.get("error") if isinstance(answer, dict) else None
        if error:
            description = error.get("description", error) if isinstance(error, dict) else error
            future.set_exception(BackendError(f"JetStream refused the event: {description}"))
        else:
            future.set_result(None)

    async def publish(self, topic: str, event: Event) -> None:
        nc = self.connection()
        if not nc.is_connected:
            raise BackendError(f"NATS at {self.settings.url} is not connected; the event was not stored")
        headers, body = encode(event)
        timeout = self.settings.publish_timeout_s
        try:
            async with asyncio.timeout(timeout):
                try:
                    await self._publish(nc, typed_subject(topic, event.type), body, headers)
                except _NoStream:
                    # A stream an older control made takes only its bare subject until control updates it
                    # (ensure_topic): stored there, every group still reads it.
                    await self._publish(nc, subject(topic), body, headers)
        except TimeoutError:
            raise BackendError(f"no JetStream ack for the event on {topic!r} within {timeout:g}s") from None
        except (NatsError, OSError) as exc:
            raise BackendError(f"NATS did not take the event on {topic!r}: {exc!r}") from None

    async def _publish(self, nc: NatsClient, to: str, body: bytes, headers: dict[str, str]) -> None:
        token = str(next(self._tokens))
        await self._window.acquire()
        try:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._acks[token] = future
            await nc.publish(to, body, reply=self._ack_inbox + token, headers=headers)
            await future
        finally:
            self._acks.pop(token, None)
            self._window.release()

    # ------------------------------------------------------------------------------------ consuming

    def open_reader(self, topic: str, group: str, *, from_start: bool = False, since: float | None = None) -> Reader:
        return _NatsReader(self, topic, group, from_start, since)

    def open_typed_reader(self, topic: str, group: str, event_type: str, *, from_start: bool = False,
                          since: float | None = None) -> Reader:
        """`TypeFilteredBackend`: the group's consumer filters on the type's subject, so the server delivers
        only events of `event_type` (and any on the bare subject)."""
        return _NatsReader(self, topic, group, from_start, since, event_type)

    async def delete_group(self, topic: str, group: str) -> None:
        try:
            await self.js().delete_consumer(stream_name(topic), consumer_name(group))
        except NotFoundError:
            return
        except (NatsError, TimeoutError) as exc:
            raise BackendError(f"cannot delete NATS consumer {consumer_name(group)!r}: {exc!r}") from None
