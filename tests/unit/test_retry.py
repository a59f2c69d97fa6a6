"""The retry policy as a user of DeliverySpec sees it: which answers retry, and how long each wait is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.contract import EgressConfig
from core.delivery.retry import RetryPolicy, is_success, parse_retry_after, should_retry


@pytest.mark.parametrize("status", [None, 404, 408, 409, 429, 500, 502, 503, 504, 599])
def test_retryable_answers(status: int | None) -> None:
    assert should_retry(status)


@pytest.mark.parametrize("status", [100, 301, 302, 303, 307, 308, 400, 401, 403, 405, 410, 413, 422])
def test_answers_that_fail_at_once(status: int) -> None:
    assert not should_retry(status)
    assert not is_success(status)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_every_2xx_is_success(status: int) -> None:
    assert is_success(status)


def test_exponential_backoff_doubles_from_twice_the_delay() -> None:
    policy = RetryPolicy(retries=4, backoff="exponential", delay_s=0.2)
    assert [policy.backoff_s(k) for k in range(1, 5)] == pytest.approx([0.4, 0.8, 1.6, 3.2])


def test_linear_backoff_grows_by_the_delay_and_never_retries_instantly() -> None:
    policy = RetryPolicy(retries=3, backoff="linear", delay_s=0.5)
    assert [policy.backoff_s(k) for k in range(1, 4)] == pytest.approx([0.5, 1.0, 1.5])


def test_policy_from_a_resolved_delivery_spec() -> None:
    config = EgressConfig(retry=3, backoff_policy="linear", backoff_delay_ms=250, timeout_ms=1500)
    policy = RetryPolicy.from_config(config, default_timeout_s=30)
    assert policy.attempts == 4
    assert policy.timeout_s == 1.5
    assert policy.backoff_s(2) == pytest.approx(0.5)
    assert RetryPolicy.from_config(EgressConfig(), default_timeout_s=7).timeout_s == 7


def test_retry_after_in_seconds_wins_over_a_shorter_backoff_on_429_and_503() -> None:
    policy = RetryPolicy(retries=2, delay_s=0.1)
    assert policy.wait_s(1, 429, "3") == 3
    assert policy.wait_s(1, 503, "2") == 2
    # Other statuses ignore the header.
    assert policy.wait_s(1, 500, "3") == pytest.approx(0.2)


def test_retry_after_is_capped_and_pt0s_turns_it_off() -> None:
    assert RetryPolicy(retries=1, retry_after_cap_s=5).wait_s(1, 429, "3600") == 5
    assert RetryPolicy(retries=1, retry_after_cap_s=0).wait_s(1, 429, "3600") == 0
    capped = RetryPolicy.from_config(EgressConfig(retry=1, retry_after_max_ms=2000), default_timeout_s=1)
    assert capped.wait_s(1, 503, "10") == 2


def test_retry_after_http_date_and_garbage() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(7)
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None

