"""channels/kafka_batches.py without a broker: what it does when aiokafka's builder says no."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from channels.kafka_batches import BatchAppender


class _Refusing:
    def append(self, **_: Any) -> None:
        return None


class _Producer:
    def create_batch(self) -> _Refusing:
        return _Refusing()


def _failed(topic: str, exc: BaseException) -> BaseException:
    return RuntimeError(topic)


async def test_a_record_an_empty_batch_refuses_fails_instead_of_being_dropped() -> None:
    appender = BatchAppender(_Producer(), 1024 * 1024, _failed)  # type: ignore[arg-type]
    with pytest.raises(KafkaError, match="refused"):
        appender.append("t", 0, b"value", [("ce_id", b"1")])
    assert not appender._handing  # nothing handed over, no caller left waiting


async def test_a_record_larger_than_a_request_is_refused_before_any_batch() -> None:
    appender = BatchAppender(_Producer(), 100, _failed)  # type: ignore[arg-type]
    with pytest.raises(MessageSizeTooLargeError):
        appender.append("t", 0, b"x" * 200, [])
