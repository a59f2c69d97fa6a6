"""core/bounded.py: a step that is late is left running and reported with where it waits; the caller goes on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.bounded import awaiting, finish_within, stragglers, told_if_slow


async def _shutdown_that_hangs(release: asyncio.Event, ended: list[str]) -> None:
    await _leave_group(release)
    ended.append("stopped")


async def _leave_group(release: asyncio.Event) -> None:
    await release.wait()


async def test_a_step_in_time_returns_true_and_has_run() -> None:
    ended: list[str] = []
    release = asyncio.Event()
    release.set()
    assert await finish_within(_shutdown_that_hangs(release, ended), 1.0, "g: stopping its own reader")
    assert ended == ["stopped"]


async def test_a_late_step_is_left_running_and_the_log_names_where_it_waits(
        caplog: pytest.LogCaptureFixture) -> None:
    ended: list[str] = []
    release = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="nerve.bounded"):
        assert not await finish_within(_shutdown_that_hangs(release, ended), 0.05, "g: stopping its own reader")
        warning = caplog.records[-1].getMessage()
        assert warning.startswith("g: stopping its own reader: not done after 0.05 s, going on without it")
        assert "(waiting in _shutdown_that_hangs:14 > _leave_group:19 > Event.wait:" in warning, warning
        assert ended == []
        release.set()  # the library's shutdown ends after all: its end is logged, nothing was cancelled
        for _ in range(5):
            await asyncio.sleep(0)
        assert ended == ["stopped"]
        assert caplog.records[-1].getMessage() == "g: stopping its own reader: done after all"


async def test_a_failing_step_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("commit refused")

    with caplog.at_level(logging.WARNING, logger="nerve.bounded"):
        assert await finish_within(fails(), 1.0, "g: stopping its own reader")
    assert caplog.records[-1].getMessage() == "g: stopping its own reader failed: RuntimeError('commit refused')"


async def test_at_shutdown_late_steps_get_a_last_wait_then_are_cancelled() -> None:
    forever = asyncio.Event()
    ended: list[str] = []
    assert not await finish_within(_shutdown_that_hangs(forever, ended), 0.01, "g: stopping its own reader")
    task = next(t for t in asyncio.all_tasks() if t.get_name() == "g: stopping its own reader")
    assert "_leave_group" in awaiting(task)
    await stragglers(0.05)
    await asyncio.sleep(0)
    assert task.cancelled() and ended == []


async def test_a_slow_step_is_awaited_to_its_end_and_the_log_names_where_it_waited(
        caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def attach() -> str:
        await _leave_group(release)
        return "cursor"

    asyncio.get_running_loop().call_later(0.2, release.set)
    with caplog.at_level(logging.WARNING, logger="nerve.bounded"):
        assert await told_if_slow(attach(), 0.05, "g: attaching to the shared reader") == "cursor"
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("g: attaching to the shared reader: not done after 0.05 s (waiting in "), warning
    assert "<locals>.attach:" in warning, warning
    assert "_leave_group:19 > Event.wait:" in warning, warning


async def test_a_quick_step_says_nothing_and_its_error_is_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def refused() -> None:
        raise ValueError("no")

    with caplog.at_level(logging.WARNING, logger="nerve.bounded"), pytest.raises(ValueError, match="no"):
        await told_if_slow(refused(), 1.0, "g: attaching")
    assert caplog.records == []


async def test_cancelling_the_caller_cancels_the_step() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    ended: list[str] = []

    async def step() -> None:
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    caller = asyncio.create_task(told_if_slow(step(), 10.0, "g: attaching"))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert ended == ["cancelled"]
