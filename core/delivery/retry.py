"""Retry policy as data, and the pure functions that decide whether and when to try again.

Which answers are retried (Knative's data-plane table, and its dispatcher's SelectiveRetry):

    no answer (connection refused, reset, timeout)   retry
    2xx                                              success, never retried
    404 Not Found, 408, 409, 429                     retry
    5xx                                              retry
    1xx, 3xx, every other 4xx (400, 401, 403, 422)   fail at once, then the dead-letter sink

Back-off before the k-th retry (k = 1 .. retry): linear `backoffDelay * k`, exponential
`backoffDelay * 2^k`. This is the formula of Knative's API documentation ("backoffDelay*2^<numberOfRetries>"),
of its own unit tests and of the Kafka broker's dispatcher. The Go channel dispatcher waits one step
less (`delay * (k-1)`, `delay * 2^(k-1)`) only because go-retryablehttp counts retries from 0; we
follow the documented intent so that a linear policy never retries instantly.

Retry-After on 429 and 503 is honoured: the wait is the larger of the back-off and the header (seconds
or an HTTP date), capped by `retryAfterMax` when the delivery sets it (PT0S turns it off) and by a
default cap otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from core.contract import EgressConfig

RETRYABLE_CLIENT_ERRORS = frozenset({404, 408, 409, 429})
RETRY_AFTER_STATUSES = frozenset({429, 503})
DEFAULT_RETRY_AFTER_CAP_S = 60.0


def is_success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def should_retry(status: int | None) -> bool:
    """Whether a failed attempt may be retried; `None` means no HTTP answer at all."""
    if status is None:
        return True
    return status >= 500 or status in RETRYABLE_CLIENT_ERRORS


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(float((when - (now or datetime.now(UTC))).total_seconds()), 0.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 0
    backoff: Literal["linear", "exponential"] = "exponential"
    delay_s: float = 0.0
    timeout_s: float = 30.0
    retry_after_cap_s: float = DEFAULT_RETRY_AFTER_CAP_S

    @classmethod
    def from_config(cls, config: EgressConfig, *, default_timeout_s: float) -> RetryPolicy:
        cap = DEFAULT_RETRY_AFTER_CAP_S if config.retry_after_max_ms is None else config.retry_after_max_ms / 1000
        return cls(
            retries=config.retry,
            backoff=config.backoff_policy,
            delay_s=config.backoff_delay_ms / 1000,
            timeout_s=config.timeout_ms / 1000 if config.timeout_ms else default_timeout_s,
            retry_after_cap_s=cap,
        )

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def backoff_s(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based)."""
        if self.backoff == "linear":
            return self.delay_s * retry
        return self.delay_s * (1 << retry)

    def wait_s(self, retry: int, status: int | None, retry_after: str | None) -> float:
        wait = self.backoff_s(retry)
        if status in RETRY_AFTER_STATUSES and self.retry_after_cap_s > 0:
            asked = parse_retry_after(retry_after)
            if asked is not None:
                wait = max(wait, min(asked, self.retry_after_cap_s))
        return wait
