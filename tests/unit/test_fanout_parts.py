"""The pure parts of reading once for many Triggers: a Trigger's Kafka position and its inbox."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from channels.base import Cursor, Reader, Record, SharedReader, TopicSpec
from channels.kafka_fanout import _Track
from channels.memory import MemoryBackend
from core.events import Event
from dispatcher import fanout
from dispatcher.fanout import Inbox, held_back
from tests.support.backends import FanoutSubscriber

# (offsets handed out, offsets acked, the reader's position) -> what this Trigger commits
COMMITTABLE = [
    ([], [], 10, 10),  # nothing for it: it moved with the reader
    ([5, 6, 7], [], 8, 5),  # the first unacked
    ([5, 6, 7], [6], 8, 5),  # an ack out of turn does not move it
    ([5, 6, 7], [6, 5], 8, 7),
    ([5, 6, 7], [5, 6, 7], 8, 8),
    ([5, 6, 7], [5, 6, 7], 20, 20),  # then records it did not match: past them
]


@pytest.mark.parametrize(("handed", "acked", "at", "expected"), COMMITTABLE)
def test_a_trigger_commits_its_first_unacked_record_or_the_readers_position(
        handed: list[int], acked: list[int], at: int, expected: int) -> None:
    track = _Track(floor=5, committed=5)
    for offset in handed:
        track.hand_out(offset)
    for offset in acked:
        track.ack(offset)
    assert track.committable(at) == expected


def test_a_trigger_behind_the_reader_keeps_its_own_position_and_acks_after_it_left_go_nowhere() -> None:
    track = _Track(floor=50, committed=50)
    assert track.committable(at=40) == 50  # the reader went back for another Trigger: this one stays
    track.hand_out(50)
    track.live = False
    track.ack(50)
    assert track.committable(at=60) == 50


async def test_an_inbox_is_full_past_its_bound_and_says_when_there_is_room() -> None:
    room = asyncio.Event()
    inbox = Inbox(2, room)
    for message in ("a", "b", "c"):
        inbox.put(message)  # type: ignore[arg-type]
    assert inbox.full
    assert await inbox.receive(2) == ["a", "b"]
    assert room.is_set() and not inbox.full
    assert inbox.close() == ["c"]
    assert await inbox.receive(5) == []


@pytest.mark.parametrize("waiting,everyone,alone", [
    (21, [21, 0], True),             # one slow Trigger beside an idle one: it holds it back
    (21, [21, 9], True),             # the other has less than half the backlog waiting
    (21, [21, 10], False),           # both have at least half waiting: behind together, this process is slow
    (21, [21, 21, 15, 12], False),   # the comparator's c: ten Triggers all behind, none goes alone
    (41, [41, 15, 12], True),        # twice the backlog: alone all the same (memory stays bounded)
    (40, [40, 15, 12], False),
    (25, [25, 21, 30], False),       # everyone past the backlog: the reader waits for room instead
    (20, [20, 0], False),            # at the backlog, not past it
    (21, [21], False),               # alone in its fan-out: there is no one to hold back
])
def test_a_trigger_goes_alone_only_when_it_holds_others_back(waiting: int, everyone: list[int], alone: bool) -> None:
    assert held_back(waiting, min(everyone), backlog=20) is alone


class _OneAttachHangs:
    """The memory backend's shared reader, but one group's attach does not return until `let_go` is set
    (a consumer group whose coordinator does not answer)."""

    def __init__(self, reader: SharedReader, hanging: str) -> None:
        self._reader = reader
        self._hanging = hanging
        self.let_go = asyncio.Event()

    @property
    def resumable(self) -> bool:
        return self._reader.resumable

    async def start(self) -> None:
        await self._reader.start()

    async def attach(self, group: str, *, since: float | None = None) -> Cursor:
        if group == self._hanging:
            await self.let_go.wait()
        return await self._reader.attach(group, since=since)

    async def detach(self, cursor: Cursor) -> None:
        await self._reader.detach(cursor)

    def open_alone(self, group: str, *, since: float | None = None) -> Reader:
        return self._reader.open_alone(group, since=since)

    async def receive(self, max_records: int) -> Sequence[Record]:
        return await self._reader.receive(max_records)

    def done(self) -> None:
        self._reader.done()

    async def stop(self) -> None:
        await self._reader.stop()


async def test_the_reader_waits_for_triggers_attaching_at_once_but_not_for_one_whose_attach_hangs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "ATTACH_PAUSE_S", 0.3)
    backend = MemoryBackend()
    await backend.ensure_topic(TopicSpec("t"))
    reader = _OneAttachHangs(backend.open_shared_reader("t", "shared"), hanging="stuck")
    shared = fanout.Fanout(reader, "unit", backlog=100, on_empty=lambda _: None)
    await shared.ready()
    loop = asyncio.get_running_loop()
    began = loop.time()
    # Both at once, as a dispatcher's start attaches its Triggers: one is in at once, one never gets in.
    subscribers = [FanoutSubscriber("stuck"), FanoutSubscriber("fast")]
    stuck = asyncio.create_task(shared.attach(subscribers[0]))
    _cursor, inbox = await shared.attach(subscribers[1])
    await backend.publish("t", Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}))
    messages = await asyncio.wait_for(inbox.receive(10), 5.0)
    # Held for the attach in flight, then read on without it: one stuck group stops no other for long.
    assert [m.event.id for m in messages] == ["1"]
    assert loop.time() - began >= 0.25
    # Still hanging: the next events are not held for another pause.
    await backend.publish("t", Event({"specversion": "1.0", "id": "2", "source": "/s", "type": "t"}))
    began = loop.time()
    messages = await asyncio.wait_for(inbox.receive(10), 5.0)
    assert [m.event.id for m in messages] == ["2"]
    assert loop.time() - began < 0.2
    reader.let_go.set()
    await stuck
    assert [s.overflows for s in subscribers] == [0, 0]
    await shared.stop()
